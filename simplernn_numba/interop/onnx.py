"""Export a layer to ONNX with the standard ``RNN`` operator (optional ``onnx`` extra).

:func:`to_onnx` writes an inference graph (opset 14) that computes what the layer's call
computes, with the weights as initializers:

- inputs: ``inputs`` (batch, timesteps, features); with ``sequence_lens=True`` also
  ``sequence_lens`` (batch,) int32, the number of unmasked steps of each row, for masks
  that are right-padded (:func:`sequence_lengths` turns such a mask into lengths); with
  ``initial_state=True`` also ``initial_state`` (batch, units) (a Bidirectional takes
  ``initial_state_forward`` and ``initial_state_backward``);
- outputs: ``output`` as the call returns it and, with ``return_state``, ``state``
  (``state_forward`` and ``state_backward``); a Bidirectional with ``merge_mode=None``
  returns ``output_forward`` and ``output_backward``.

Each direction is one ``RNN`` node (``direction="forward"``, or ``"reverse"`` for
``go_backwards``), so the two directions of a Bidirectional may differ as Keras allows;
the merge is a ``Concat``, ``Add``, ``Mul`` or mean. ONNX's ``RNN`` reads the sequence
time-major, so the graph transposes around it, and it zero-fills the steps past a row's
length, so the graph repeats the last output there where Keras does (without
``zero_output_for_mask``).

What ONNX's ``RNN`` cannot express is refused with a ValueError: activations other than
linear, tanh, relu, sigmoid, elu, softplus, softsign, hard_sigmoid and leaky_relu
(and Python callables), stateful layers (a graph keeps no state between runs: export a
non-stateful copy with ``initial_state=True`` and carry the state yourself), and masks
that are not right-padded (:func:`sequence_lengths`). Dropout is a training-time
operation and is not exported.

The graph has the layer's dtype, or ``dtype``. ONNX Runtime 1.32's CPU provider
implements ``RNN`` in float32 only: export a float64 layer with ``dtype="float32"`` to run
it there (the weights are cast).

>>> import numpy as np
>>> from simplernn_numba import SimpleRNN
>>> layer = SimpleRNN(4, return_sequences=True)
>>> layer.build((None, None, 3))
>>> [value.name for value in to_onnx(layer, sequence_lens=True).graph.input]
['inputs', 'sequence_lens']
>>> sequence_lengths(np.array([[1, 1, 0], [1, 0, 0]], bool)).tolist()
[2, 1]
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from .. import _validate, activations
from ..bidirectional import Bidirectional
from ..layer import SimpleRNN

OPSET = 14

#: Our activation name -> (ONNX RNN activation, alpha, beta); alpha/beta None when unused.
ACTIVATIONS = {
    "linear": ("Affine", 1.0, 0.0),
    "tanh": ("Tanh", None, None),
    "relu": ("Relu", None, None),
    "sigmoid": ("Sigmoid", None, None),
    "elu": ("Elu", 1.0, None),
    "softplus": ("Softplus", None, None),
    "softsign": ("Softsign", None, None),
    "hard_sigmoid": ("HardSigmoid", 1.0 / 6.0, 0.5),
    "leaky_relu": ("LeakyRelu", activations.LEAKY_RELU_SLOPE, None),
}


def sequence_lengths(mask) -> np.ndarray:
    """The ``sequence_lens`` input for a right-padded mask: unmasked steps per row, int32.

    Parameters
    ----------
    mask : array_like (batch, timesteps) of bool (or 0/1)
        Each row must be some True steps followed only by False steps.

    Returns
    -------
    ndarray (batch,) int32

    Raises
    ------
    ValueError
        For a mask that is not 2-D or a row that is not right-padded (ONNX's
        ``sequence_lens`` cannot express a step masked before an unmasked one).
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (batch, timesteps); received shape {mask.shape}.")
    mask = mask != 0
    lengths = mask.sum(axis=1)
    padded = np.arange(mask.shape[1])[None, :] < lengths[:, None]
    bad = np.flatnonzero((padded != mask).any(axis=1))
    if bad.size:
        raise ValueError(
            f"mask row {int(bad[0])} ({mask[bad[0]].astype(int).tolist()}) is not right-padded; "
            "ONNX's RNN sequence_lens can only express masks whose False steps all follow the True ones."
        )
    return lengths.astype(np.int32)


class _Graph:
    """Nodes, initializers, inputs and outputs of the graph being built (unique names)."""

    def __init__(self, helper, numpy_helper, dtype: np.dtype):
        self.helper, self.numpy_helper, self.dtype = helper, numpy_helper, dtype
        self.nodes, self.initializers, self.inputs, self.outputs = [], [], [], []
        self._count = 0

    def name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def constant(self, stem: str, value) -> str:
        name = self.name(stem)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, **attributes) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], **attributes))
        return out

    def tensor_type(self, dtype) -> int:
        return self.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))

    def add_input(self, name: str, shape: list, dtype=None) -> str:
        self.inputs.append(self.helper.make_tensor_value_info(
            name, self.tensor_type(self.dtype if dtype is None else dtype), shape))
        return name

    def add_output(self, name: str, value: str, shape: list) -> None:
        self.nodes.append(self.helper.make_node("Identity", [value], [name]))
        self.outputs.append(self.helper.make_tensor_value_info(name, self.tensor_type(self.dtype), shape))


def _check(layer: SimpleRNN) -> tuple[str, float | None, float | None]:
    name = activations.name_of(layer.activation)
    if name not in ACTIVATIONS:
        shown = activations.serialize(layer.activation) if name else f"Python callable {layer.activation!r}"
        raise ValueError(
            f"Layer {layer.name!r} uses activation {shown}, which ONNX's RNN operator has no "
            f"equivalent for; exportable activations: {', '.join(ACTIVATIONS)}."
        )
    if layer.stateful:
        raise ValueError(
            f"Layer {layer.name!r} is stateful, and an ONNX graph keeps no state between runs: export "
            "a non-stateful copy (same weights) with initial_state=True and feed the returned state back."
        )
    if not layer.built:
        raise ValueError(f"Layer {layer.name!r} is not built; build or call it before exporting.")
    return ACTIVATIONS[name]


def _direction(g: _Graph, layer: SimpleRNN, x_time_major: str, lens: str | None, h0: str | None):
    """One RNN node for ``layer``: (sequence (B, T, U) in input order, final state (B, U))."""
    act, alpha, beta = _check(layer)
    dt = g.dtype
    kernel, recurrent = layer.kernel.astype(dt), layer.recurrent_kernel.astype(dt)
    bias = layer.bias.astype(dt) if layer.use_bias else np.zeros(layer.units, dt)
    w = g.constant("W", kernel.T[None].copy())
    r = g.constant("R", recurrent.T[None].copy())
    b = g.constant("B", np.concatenate([bias, np.zeros_like(bias)])[None])
    attributes = {"hidden_size": layer.units, "activations": [act],
                  "direction": "reverse" if layer.go_backwards else "forward"}
    if alpha is not None:
        attributes["activation_alpha"] = [float(alpha)]
    if beta is not None:
        attributes["activation_beta"] = [float(beta)]
    h0_3d = "" if h0 is None else g.op("Unsqueeze", h0, g.constant("axes", np.array([0], np.int64)))
    y, y_h = g.name("Y"), g.name("Y_h")
    g.nodes.append(g.helper.make_node("RNN", [x_time_major, w, r, b, lens or "", h0_3d], [y, y_h],
                                      **attributes))
    sequence = g.op("Transpose", g.op("Squeeze", y, g.constant("axes", np.array([1], np.int64))),
                    perm=[1, 0, 2])
    state = g.op("Squeeze", y_h, g.constant("axes", np.array([0], np.int64)))
    return sequence, state


class _Lengths:
    """Boolean tensors derived from ``sequence_lens`` (built on first use)."""

    def __init__(self, g: _Graph, lens: str, inputs: str):
        self.g, self.lens, self.inputs = g, lens, inputs
        self._steps = None

    def steps(self) -> str:
        """T as an int32 scalar."""
        if self._steps is None:
            g = self.g
            t = g.op("Gather", g.op("Shape", self.inputs), g.constant("one", np.array(1, np.int64)))
            self._steps = g.op("Cast", t, to=g.tensor_type(np.int32))
        return self._steps

    def rows(self, condition: str) -> str:
        """(B, 1) bool from a (B,) bool."""
        return self.g.op("Unsqueeze", condition, self.g.constant("axes", np.array([1], np.int64)))

    def nonempty(self) -> str:
        return self.rows(self.g.op("Greater", self.lens, self.g.constant("zero", np.array(0, np.int32))))

    def full(self) -> str:
        return self.rows(self.g.op("Equal", self.lens, self.steps()))

    def valid_steps(self) -> str:
        """(B, T, 1) bool: step t < length."""
        g = self.g
        t = g.op("Range", g.constant("zero", np.array(0, np.int32)), self.steps(),
                 g.constant("one", np.array(1, np.int32)))
        valid = g.op("Less", g.op("Unsqueeze", t, g.constant("axes", np.array([0], np.int64))),
                     self.rows(self.lens))
        return g.op("Unsqueeze", valid, g.constant("axes", np.array([2], np.int64)))


def _outputs(g: _Graph, layer: SimpleRNN, sequence: str, state: str, lengths: _Lengths | None,
             h0: str | None, reverse: bool) -> tuple[str, str]:
    """(output, final state) from an RNN node's results (``sequence`` in input order).

    ``reverse``: return the sequence reversed in time, as a go_backwards layer's call does
    (processing order), or as Bidirectional does with its backward layer's output.
    """
    if lengths is None:
        last = state
    else:
        # ONNX gives the state after the last valid step, and zeros for a row without one, where
        # Keras' last output is zero and its state the initial state
        zero = g.constant("zero", np.zeros((), g.dtype))
        nonempty = lengths.nonempty()
        last = g.op("Where", nonempty, state, zero)
        state = g.op("Where", nonempty, state, zero if h0 is None else h0)
    if layer.return_sequences:
        output = sequence
        if lengths is not None and not layer.go_backwards and not layer.zero_output_for_mask:
            output = g.op("Where", lengths.valid_steps(), sequence,  # repeat the last output
                          g.op("Unsqueeze", last, g.constant("axes", np.array([1], np.int64))))
        if reverse:
            output = g.op("Slice", output, g.constant("starts", np.array([-1], np.int64)),
                          g.constant("ends", np.array([np.iinfo(np.int64).min], np.int64)),
                          g.constant("axes", np.array([1], np.int64)),
                          g.constant("steps", np.array([-1], np.int64)))
    elif lengths is not None and layer.zero_output_for_mask and not layer.go_backwards:
        output = g.op("Where", lengths.full(), last, zero)  # the last step is masked unless full
    else:
        output = last
    return output, state


def to_onnx(layer: SimpleRNN | Bidirectional, path: str | os.PathLike | None = None, *,
            sequence_lens: bool = False, initial_state: bool = False, dtype: DTypeLike = None) -> Any:
    """An ONNX model of ``layer``'s call (inference); written to ``path`` when given.

    Parameters
    ----------
    layer : SimpleRNN or Bidirectional
        Built, not stateful, with an activation the ONNX RNN operator has (see the module
        docstring).
    path : str or os.PathLike, optional
        Where to write the model (``.onnx``).
    sequence_lens : bool
        Add the ``sequence_lens`` (batch,) int32 input, for right-padded masks
        (:func:`sequence_lengths`).
    initial_state : bool
        Add the initial state input(s), (batch, units) each.
    dtype : {None, "float32", "float64"}
        The graph's dtype; None: the layer's.

    Returns
    -------
    onnx.ModelProto
        Checked with ``onnx.checker``.

    Raises
    ------
    ImportError
        Without the ``onnx`` package (``pip install "simplernn_numba[onnx]"``).
    TypeError, ValueError
        For what ONNX's RNN cannot express (see the module docstring).
    """
    import onnx
    from onnx import helper, numpy_helper

    if isinstance(layer, Bidirectional):
        parts = [("forward", layer.forward_layer), ("backward", layer.backward_layer)]
    elif isinstance(layer, SimpleRNN):
        parts = [("", layer)]
    else:
        raise TypeError(f"Expected a SimpleRNN or Bidirectional layer; received {type(layer).__name__}.")
    for _, part in parts:
        _check(part)
    dt = _validate.float_dtype(parts[0][1].dtype if dtype is None else dtype)
    sequence_lens = _validate.flag(sequence_lens, "sequence_lens")
    initial_state = _validate.flag(initial_state, "initial_state")
    g = _Graph(helper, numpy_helper, dt)
    features = int(parts[0][1].kernel.shape[0])
    inputs = g.add_input("inputs", ["batch", "timesteps", features])
    x = g.op("Transpose", inputs, perm=[1, 0, 2])
    lens = g.add_input("sequence_lens", ["batch"], np.int32) if sequence_lens else None
    lengths = None if lens is None else _Lengths(g, lens, inputs)
    results = []
    for suffix, part in parts:
        h0 = None
        if initial_state:
            h0 = g.add_input("_".join(filter(None, ["initial_state", suffix])), ["batch", part.units])
        sequence, state = _direction(g, part, x, lens, h0)
        # a go_backwards call returns processing order; Bidirectional flips its backward output
        reverse = part.go_backwards != (suffix == "backward")
        results.append(_outputs(g, part, sequence, state, lengths, h0, reverse))
    batch_shape = ["batch", "timesteps"] if parts[0][1].return_sequences else ["batch"]
    if isinstance(layer, SimpleRNN):
        g.add_output("output", results[0][0], [*batch_shape, layer.units])
        if layer.return_state:
            g.add_output("state", results[0][1], ["batch", layer.units])
    else:
        _merge(g, layer, results, batch_shape)
    graph = helper.make_graph(g.nodes, layer.name, g.inputs, g.outputs, g.initializers)
    opsets = [helper.make_opsetid("", OPSET)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="simplernn_numba",
                              ir_version=helper.find_min_ir_version_for(opsets))
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        onnx.save(model, os.fspath(path))
    return model


def _merge(g: _Graph, layer: Bidirectional, results: list, batch_shape: list) -> None:
    (y, h_forward), (y_rev, h_backward) = results
    units = (layer.forward_layer.units, layer.backward_layer.units)
    if layer.merge_mode is None:
        g.add_output("output_forward", y, [*batch_shape, units[0]])
        g.add_output("output_backward", y_rev, [*batch_shape, units[1]])
    else:
        merged = {
            "concat": lambda: g.op("Concat", y, y_rev, axis=-1),
            "sum": lambda: g.op("Add", y, y_rev),
            "mul": lambda: g.op("Mul", y, y_rev),
            "ave": lambda: g.op("Mul", g.op("Add", y, y_rev), g.constant("half", np.array(0.5, g.dtype))),
        }[layer.merge_mode]()
        width = sum(units) if layer.merge_mode == "concat" else units[0]
        g.add_output("output", merged, [*batch_shape, width])
    if layer.return_state:
        g.add_output("state_forward", h_forward, ["batch", units[0]])
        g.add_output("state_backward", h_backward, ["batch", units[1]])
