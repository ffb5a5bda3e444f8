"""A Keras model loaded from its file, run with NumPy and our compiled SimpleRNN kernels.

:func:`load_model` reads a ``.keras`` or legacy ``.h5`` file (:mod:`.keras_files`),
rebuilds each layer (:mod:`.keras_layers`) and keeps the model's graph: a chain for a
``Sequential`` model, the recorded calls for a ``Functional`` one (Keras 3 records the
mask of each call as ``NotEqual``/``Any`` operations, which run here too). Masks travel
with the tensors as in Keras: each layer passes on what its ``mask_rule`` says, and a
call without an explicit ``mask`` gets the mask of its first input, except, in Keras 3,
a call with more than one tensor argument (such as ``rnn(x, initial_state=[h])``), which
Keras 3 runs without a mask.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..bidirectional import Bidirectional
from ..layer import SimpleRNN
from .keras_config import ModelFileError, UnsupportedLayerError
from .keras_layers import SUPPORTED, build_layer

_TENSOR = "__keras_tensor__"
#: Call arguments of a recorded call that are read (``training`` is dropped: inference).
_CALL_ARGUMENTS = ("mask", "initial_state", "training")


@dataclass(frozen=True)
class _Ref:
    """Output ``tensor`` of call ``node`` of layer ``layer``."""

    layer: str
    node: int
    tensor: int


@dataclass(frozen=True)
class _Input:
    name: str
    shape: tuple
    dtype: str


class _Operation:
    """A Keras 3 operation recorded in a functional graph (the mask computations)."""

    mask_rule = "none"

    def __init__(self, entry: dict):
        self.name, self.class_name = entry.get("name"), entry["class_name"]
        config = entry.get("config") or {}
        self.axis, self.keepdims = config.get("axis"), bool(config.get("keepdims", False))

    def __call__(self, *args):
        if self.class_name == "NotEqual":
            return np.not_equal(*args)
        return np.any(args[0], axis=self.axis, keepdims=self.keepdims)


_OPERATIONS = ("NotEqual", "Any")


@dataclass
class _Call:
    layer: object
    args: list
    kwargs: dict = field(default_factory=dict)
    #: Whether a call without ``mask`` takes its first input's mask.
    auto_mask: bool = True


def _refs(value):
    """A Keras 3 call argument with each recorded tensor as a :class:`_Ref`."""
    if isinstance(value, dict):
        if value.get("class_name") == _TENSOR:
            return _Ref(*value["config"]["keras_history"])
        return {key: _refs(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_refs(item) for item in value]
    return value


def _parse_node(node) -> tuple[list, dict, bool]:
    """(args, kwargs, auto_mask) of one recorded call, Keras 3 (``{"args", "kwargs"}``) or Keras 2
    (a list of inbound tensors; several are one list argument, as ``[x, initial_state]``)."""
    if isinstance(node, dict):
        args, kwargs = _refs(node.get("args", [])), _refs(node.get("kwargs", {}))
        return args, kwargs, len(_all_refs([args, list(kwargs.values())])) == 1
    refs = [_Ref(item[0], item[1], item[2]) for item in node]
    kwargs = {}
    for item in node:
        kwargs.update(item[3] if len(item) > 3 else {})
    return (refs if len(refs) == 1 else [refs]), kwargs, True


def _first_ref(value):
    if isinstance(value, _Ref):
        return value
    if isinstance(value, list):
        for item in value:
            found = _first_ref(item)
            if found is not None:
                return found
    return None


def _rnn_masks(layer, mask, count: int) -> list:
    """What a SimpleRNN or Bidirectional passes on: the mask for sequence outputs only."""
    sequence_mask = mask if layer.return_sequences else None
    outputs = 2 if isinstance(layer, Bidirectional) and layer.merge_mode is None else 1
    return [sequence_mask] * outputs + [None] * (count - outputs)


def _input_spec(config: dict, name: str) -> _Input:
    shape = config.get("batch_shape", config.get("batch_input_shape"))
    if shape is None:
        raise ModelFileError(f"Input {name!r} has no shape in the file.")
    return _Input(name, tuple(shape), str(config.get("dtype") or "float32"))


class KerasModel:
    """A Keras ``Sequential`` or ``Functional`` model read from a file; inference only.

    Attributes
    ----------
    name : str
    layers : list
        In the file's order: our :class:`~simplernn_numba.SimpleRNN` and
        :class:`~simplernn_numba.Bidirectional` for the recurrent layers, small NumPy
        layers (``Dense``, ``Embedding``, ...) for the others.
    keras_version : str
        The Keras that wrote the file.
    """

    def __init__(self, name: str, layers: list, calls: dict, inputs: list[_Input], outputs: list[_Ref],
                 keras_version: str):
        self.name, self.layers, self.keras_version = name, layers, keras_version
        self._calls, self._inputs, self._outputs = calls, inputs, outputs

    @property
    def input_shapes(self) -> list[tuple]:
        """Each input's shape as in the file, None for any size."""
        return [spec.shape for spec in self._inputs]

    def get_layer(self, name: str):
        """The layer called ``name``."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No layer {name!r}; the layers are {[layer.name for layer in self.layers]}.")

    def _check_inputs(self, inputs) -> list[np.ndarray]:
        if not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        if len(inputs) != len(self._inputs):
            raise ValueError(f"Model {self.name!r} takes {len(self._inputs)} inputs; received {len(inputs)}.")
        arrays = []
        for spec, value in zip(self._inputs, inputs):
            array = np.asarray(value)
            dims = array.shape[1:]
            if array.ndim != len(spec.shape) or any(d not in (None, n) for d, n in zip(spec.shape[1:], dims)):
                raise ValueError(f"Input {spec.name!r} of model {self.name!r} expects shape {spec.shape}; "
                                 f"received {array.shape}.")
            if array.dtype.kind not in "biuf":
                raise TypeError(f"Input {spec.name!r} must be numeric; received dtype {array.dtype}.")
            arrays.append(array.astype(spec.dtype, copy=False))
        return arrays

    def __call__(self, inputs):
        """Run the model on a whole batch.

        Parameters
        ----------
        inputs : array (batch, ...) or list of arrays, one per model input
            Each input's shape and dtype as in the file (``input_shapes``); token
            indices for an ``Embedding``, floats otherwise.

        Returns
        -------
        array, or a list of arrays for a model with several outputs.
        """
        arrays = self._check_inputs(inputs)
        values: dict[tuple[str, int], tuple[list, list]] = {}
        for spec, array in zip(self._inputs, arrays):
            values[(spec.name, 0)] = ([array], [None])

        def tensor(ref: _Ref):
            key = (ref.layer, ref.node)
            if key not in values:
                values[key] = self._run_call(self._calls[key], tensor)
            outputs, masks = values[key]
            return outputs[ref.tensor], masks[ref.tensor]

        outputs = [tensor(ref)[0] for ref in self._outputs]
        return outputs[0] if len(outputs) == 1 else outputs

    @staticmethod
    def _run_call(call: _Call, tensor) -> tuple[list, list]:
        def value(item):
            if isinstance(item, _Ref):
                return tensor(item)[0]
            if isinstance(item, list):
                return [value(i) for i in item]
            return item

        args = value(call.args)
        layer = call.layer
        if isinstance(layer, _Operation):
            return [layer(*args)], [None]
        first = _first_ref(call.args)
        mask = None
        if "mask" in call.kwargs:
            mask = value(call.kwargs["mask"])
        elif call.auto_mask and first is not None:
            mask = tensor(first)[1]
        if isinstance(mask, list):  # Bidirectional(merge_mode=None) outputs: one mask each
            mask = mask[0]
        if isinstance(layer, (SimpleRNN, Bidirectional)):
            x, initial_state = args[0], value(call.kwargs.get("initial_state"))
            if isinstance(x, list):  # Keras 2: [inputs, *initial states]
                x, initial_state = x[0], x[1:]
            result = layer(x, mask=mask, initial_state=initial_state)
            outputs = result if isinstance(result, list) else [result]
            return outputs, _rnn_masks(layer, mask, len(outputs))
        if layer.mask_rule == "own":
            output, own = layer(args[0])
            return [output], [own]
        return [layer(args[0])], [mask]

    def predict(self, x, batch_size: int | None = None):
        """Outputs for ``x``, ``batch_size`` rows per call (None: all rows in one call).

        Results do not depend on ``batch_size``; a stateful model carries its state from
        one batch to the next, as in Keras.
        """
        if batch_size is None:
            return self(x)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int or None; received {batch_size!r}.")
        inputs = x if isinstance(x, (list, tuple)) else [x]
        rows = len(inputs[0])
        parts = [self([a[start:start + batch_size] for a in inputs] if isinstance(x, (list, tuple))
                      else x[start:start + batch_size]) for start in range(0, max(rows, 1), batch_size)]
        if isinstance(parts[0], list):
            return [np.concatenate([p[i] for p in parts]) for i in range(len(parts[0]))]
        return np.concatenate(parts)

    def count_params(self) -> int:
        return sum(layer.count_params() for layer in self.layers)

    def summary(self) -> str:
        """One line per layer: name, class, parameter count, what it is called on."""
        lines = [f"Model {self.name!r} (Keras {self.keras_version} file)",
                 f"{'Layer (type)':40} {'Params':>10}  Connected to"]
        callers = {key[0]: call for key, call in self._calls.items()}
        for layer in self.layers:
            call = callers.get(layer.name)
            sources = sorted({ref.layer for ref in _all_refs(call.args)}) if call else []
            kind = getattr(layer, "class_name", type(layer).__name__)
            lines.append(f"{layer.name + ' (' + kind + ')':40} {layer.count_params():>10}  "
                         f"{', '.join(sources)}")
        lines.append(f"Total params: {self.count_params()}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        inputs = ", ".join(f"{s.shape} {s.dtype}" for s in self._inputs)
        layers = ", ".join(repr(layer) for layer in self.layers)
        return f"KerasModel({self.name!r}, inputs=[{inputs}], layers=[{layers}])"


def _all_refs(value) -> list[_Ref]:
    if isinstance(value, _Ref):
        return [value]
    if isinstance(value, list):
        return [ref for item in value for ref in _all_refs(item)]
    return []


def _entry_name(entry: dict) -> str:
    return (entry.get("config") or {}).get("name", entry.get("name"))


def _endpoints(spec) -> list[_Ref]:
    if isinstance(spec, dict):
        raise UnsupportedLayerError("Models with named (dict) inputs or outputs are not supported.")
    if spec and isinstance(spec[0], str):
        spec = [spec]
    return [_Ref(*item[:3]) for item in spec]


def _build(model_file, *, device: str) -> KerasModel:
    top = model_file.config
    class_name, config = top.get("class_name"), top.get("config") or {}
    if class_name not in ("Sequential", "Functional", "Model"):
        raise UnsupportedLayerError(f"Model class {class_name!r} is not supported; load_model reads "
                                    "Sequential and Functional models.")
    entries = config.get("layers")
    if not isinstance(entries, list) or not entries:
        raise ModelFileError("The model config has no layers.")

    def build(entry):
        return build_layer(entry, model_file.weights, keras2=model_file.keras2, device=device)

    layers, calls, inputs = [], {}, []
    if class_name == "Sequential":
        if entries[0].get("class_name") == "InputLayer":
            inputs.append(_input_spec(entries[0].get("config") or {}, _entry_name(entries[0])))
            entries = entries[1:]
        else:
            first = entries[0].get("config") or {}
            shape = first.get("batch_input_shape") or config.get("build_input_shape")
            inputs.append(_input_spec({"batch_shape": shape}, "input"))
        previous = _Ref(inputs[0].name, 0, 0)
        for entry in entries:
            layer = build(entry)
            layers.append(layer)
            calls[(layer.name, 0)] = _Call(layer, [previous])
            previous = _Ref(layer.name, 0, 0)
        return KerasModel(config.get("name", "sequential"), layers, calls, inputs, [previous],
                          model_file.keras_version)
    for entry in entries:
        name = _entry_name(entry)
        if entry.get("class_name") == "InputLayer":
            inputs.append(_input_spec(entry.get("config") or {}, name))
            continue
        module = str(entry.get("module") or "")  # a Keras 3 .h5 file drops the module
        if entry.get("class_name") in _OPERATIONS and module in ("", "keras.src.ops.numpy"):
            layer = _Operation({**entry, "name": name})
        elif module.startswith("keras.src.ops"):
            raise UnsupportedLayerError(f"Operation {name!r} ({entry.get('class_name')}) is not supported; "
                                        f"load_model supports the layers {', '.join(SUPPORTED)}.")
        else:
            layer = build(entry)
            layers.append(layer)
        for index, node in enumerate(entry.get("inbound_nodes") or []):
            args, kwargs, auto_mask = _parse_node(node)
            unknown = set(kwargs) - set(_CALL_ARGUMENTS)
            if unknown or (kwargs.get("initial_state") is not None and
                           not isinstance(layer, (SimpleRNN, Bidirectional))):
                raise UnsupportedLayerError(f"Layer {name!r} ({entry.get('class_name')}) is called with "
                                            f"arguments {sorted(kwargs)}; only mask and initial_state "
                                            "(recurrent layers) are supported.")
            calls[(name, index)] = _Call(layer, args, {k: v for k, v in kwargs.items() if k != "training"},
                                         auto_mask)
    by_name = {spec.name: spec for spec in inputs}
    ordered_inputs = [by_name[ref.layer] for ref in _endpoints(config.get("input_layers", []))]
    outputs = _endpoints(config.get("output_layers", []))
    _check_graph(calls, {(spec.name, 0) for spec in ordered_inputs}, outputs)
    return KerasModel(config.get("name", "model"), layers, calls, ordered_inputs, outputs,
                      model_file.keras_version)


def _check_graph(calls: dict, inputs: set, outputs: list[_Ref]) -> None:
    """Every tensor the outputs need comes from a recorded call or an input, without a cycle."""
    done, running = set(inputs), set()

    def visit(key):
        if key in done:
            return
        if key in running or key not in calls:
            problem = "a cycle through" if key in running else "a missing"
            raise ModelFileError(f"The model graph has {problem} call {key[1]} of layer {key[0]!r}.")
        running.add(key)
        call = calls[key]
        for ref in _all_refs([call.args, list(call.kwargs.values())]):
            visit((ref.layer, ref.node))
        running.discard(key)
        done.add(key)

    for ref in outputs:
        visit((ref.layer, ref.node))


def load_model(path: str | os.PathLike, *, device: str = "auto") -> KerasModel:
    """A Keras model from a Keras 3 ``.keras`` file or a legacy (tf_keras, Keras 2) ``.h5`` file.

    Needs h5py (the ``h5`` extra); imports neither TensorFlow, Keras nor torch, and runs
    no code from the file.

    Parameters
    ----------
    path : str or path-like
    device : {"auto", "cpu", "cuda"}
        Where the recurrent layers run.

    Returns
    -------
    KerasModel
        ``model(x)`` / ``model.predict(x, batch_size=None)``, ``model.layers``,
        ``model.summary()``.

    Raises
    ------
    FileNotFoundError
    ModelFileError
        A truncated, corrupted or incomplete file, or an unknown format version.
    UnsupportedLayerError
        A layer other than those listed in the message, a ``Lambda`` or custom object,
        or a mixed-precision policy.
    """
    from .keras_files import read_model_file

    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such file: {os.fspath(path)!r}.")
    model_file = read_model_file(path)
    try:
        return _build(model_file, device=device)
    except ModelFileError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
        raise ModelFileError(f"{os.fspath(path)}: the model config cannot be read ({error!r}).") from error
