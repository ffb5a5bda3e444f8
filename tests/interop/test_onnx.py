"""ONNX export: the exported graph, run in ONNX Runtime, computes what the layer's call computes."""

import itertools

import numpy as np
import pytest

from simplernn_numba import Bidirectional, SimpleRNN
from simplernn_numba.bench.cases import tolerance
from simplernn_numba.interop.onnx import ACTIVATIONS, sequence_lengths, to_onnx
from simplernn_numba.kernels import reference

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

LENGTHS = np.array([5, 3, 0, 1], np.int32)  # a full row, padded rows, a row masked throughout
MASK = np.arange(5)[None, :] < LENGTHS[:, None]


def _built(layer, features=3, seed=0):
    rng = np.random.default_rng(seed)
    layer.build((None, None, features))
    layer.set_weights([rng.normal(scale=0.5, size=w.shape) for w in layer.weights])
    return layer


def _run(model, feeds: dict) -> list:
    runner = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return runner.run(None, feeds)


def _compare(ours, theirs, dtype="float32"):
    ours = ours if isinstance(ours, list) else [ours]
    assert len(ours) == len(theirs)
    rtol, atol = tolerance(dtype, "peer")
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(b, a, rtol=rtol, atol=atol)


@pytest.mark.parametrize("return_sequences, go_backwards, zero_output_for_mask, masked",
                         list(itertools.product([True, False], repeat=4)))
def test_simple_rnn_matches_ours(return_sequences, go_backwards, zero_output_for_mask, masked):
    layer = _built(SimpleRNN(4, return_sequences=return_sequences, go_backwards=go_backwards,
                             zero_output_for_mask=zero_output_for_mask, return_state=True))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 5, 3)).astype(np.float32)
    h0 = rng.normal(size=(4, 4)).astype(np.float32)
    model = to_onnx(layer, sequence_lens=masked, initial_state=True)
    feeds = {"inputs": x, "initial_state": h0}
    if masked:
        feeds["sequence_lens"] = sequence_lengths(MASK)
    _compare(layer(x, mask=MASK if masked else None, initial_state=h0), _run(model, feeds))


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_every_exportable_activation(activation):
    """The exported activation computes the layer's (its values by the NumPy reference, which the
    layer's kernels are tested against: each activation would compile a kernel variant here)."""
    layer = _built(SimpleRNN(4, activation=activation, return_sequences=True))
    x = np.random.default_rng(2).normal(size=(2, 6, 3)).astype(np.float32)
    expected, _ = reference.forward(x, layer.kernel, layer.recurrent_kernel, layer.bias,
                                    np.zeros((2, 4), np.float32), activation=activation)
    _compare(expected, _run(to_onnx(layer), {"inputs": x}))


@pytest.mark.parametrize("merge_mode, return_sequences, masked", list(itertools.product(
    ["concat", "sum", "mul", "ave", None], [True, False], [True, False])))
def test_bidirectional_matches_ours(merge_mode, return_sequences, masked):
    layer = Bidirectional(SimpleRNN(3, return_sequences=return_sequences, return_state=True),
                          merge_mode=merge_mode)
    _built(layer)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 5, 3)).astype(np.float32)
    h0 = [rng.normal(size=(4, 3)).astype(np.float32) for _ in range(2)]
    model = to_onnx(layer, sequence_lens=masked, initial_state=True)
    feeds = {"inputs": x, "initial_state_forward": h0[0], "initial_state_backward": h0[1]}
    if masked:
        feeds["sequence_lens"] = sequence_lengths(MASK)
    _compare(layer(x, mask=MASK if masked else None, initial_state=h0), _run(model, feeds))


def test_bidirectional_directions_may_differ():
    layer = _built(Bidirectional(SimpleRNN(3, return_sequences=True),
                                 backward_layer=SimpleRNN(2, activation="relu", return_sequences=True,
                                                          go_backwards=True)))
    x = np.random.default_rng(4).normal(size=(2, 4, 3)).astype(np.float32)
    _compare(layer(x), _run(to_onnx(layer), {"inputs": x}))


def test_float64_graph_and_float32_export_of_a_float64_layer(tmp_path):
    from onnx.reference import ReferenceEvaluator

    layer = _built(SimpleRNN(4, return_sequences=True, go_backwards=True, dtype="float64"))
    x = np.random.default_rng(5).normal(size=(2, 5, 3))
    model = to_onnx(layer, tmp_path / "rnn.onnx")
    saved = onnx.load(tmp_path / "rnn.onnx")
    assert saved.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    _compare(layer(x), ReferenceEvaluator(model).run(None, {"inputs": x}), "float64")
    cast = to_onnx(layer, dtype="float32")
    _compare(layer(x).astype(np.float32), _run(cast, {"inputs": x.astype(np.float32)}))


@pytest.mark.parametrize("make, error, match", [
    (lambda: _built(SimpleRNN(2, activation="selu")), ValueError, "activation selu"),
    (lambda: _built(SimpleRNN(2, activation=lambda z: z)), ValueError, "Python callable"),
    (lambda: _built(SimpleRNN(2, stateful=True)), ValueError, "stateful"),
    (lambda: SimpleRNN(2), ValueError, "not built"),
    (lambda: "layer", TypeError, "SimpleRNN or Bidirectional"),
])
def test_refusals(make, error, match):
    with pytest.raises(error, match=match):
        to_onnx(make())


def test_sequence_lengths_refuse_masks_that_are_not_right_padded():
    assert sequence_lengths([[1, 1, 0], [0, 0, 0]]).tolist() == [2, 0]
    with pytest.raises(ValueError, match=r"mask row 1 \(\[0, 1, 1\]\) is not right-padded"):
        sequence_lengths(np.array([[1, 0, 0], [0, 1, 1]], bool))
    with pytest.raises(ValueError, match="2-D"):
        sequence_lengths(np.ones(3))
