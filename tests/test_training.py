"""SimpleRNN.backward (with regularizers), optimizers, and the training example."""

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

import simplernn_numba as srn
from simplernn_numba import SimpleRNN
from simplernn_numba.optimizers import SGD, Adam
from simplernn_numba.testing import assert_gradients_close, numeric_gradients

ROOT = Path(__file__).resolve().parents[1]


def _layer(**config):
    layer = SimpleRNN(5, dtype="float64", **config)
    layer.build((None, None, 3))
    rng = np.random.default_rng(0)
    layer.set_weights([rng.normal(scale=0.4, size=w.shape) for w in layer.weights])
    return layer


@pytest.mark.parametrize("return_sequences, return_state, go_backwards", [
    (True, True, False), (False, True, True), (False, False, False),
])
def test_layer_gradients_include_regularizers(return_sequences, return_state, go_backwards):
    layer = _layer(kernel_regularizer=srn.regularizers.L1L2(0.01, 0.02), recurrent_regularizer="l2",
                   bias_regularizer="l1", activity_regularizer=srn.regularizers.L1L2(0.03, 0.05),
                   return_sequences=return_sequences, return_state=return_state, go_backwards=go_backwards)
    rng = np.random.default_rng(1)
    x, h0 = rng.normal(size=(4, 6, 3)), rng.normal(size=(4, 5))
    mask = rng.random((4, 6)) > 0.3
    mask[0] = False
    out_shape = (4, 6, 5) if return_sequences else (4, 5)
    d_out, d_state = rng.normal(size=out_shape), rng.normal(size=(4, 5))

    def total_loss(p):
        layer.set_weights([p["kernel"], p["recurrent_kernel"], p["bias"]])
        result = layer(p["inputs"], mask=mask, initial_state=p["initial_state"])
        out, state = result if return_state else (result, None)
        loss = (out * d_out).sum() + (0 if state is None else (state * d_state).sum())
        return float(loss + sum(layer.losses))

    params = {"inputs": x, "initial_state": h0, **dict(zip(layer.weight_names, layer.get_weights()))}
    layer(x, mask=mask, initial_state=h0, training=True)
    grads = layer.backward(d_out, d_state if return_state else None)
    assert all(term > 0 for term in layer.losses) and len(layer.losses) == 4 + return_state
    assert_gradients_close(grads, numeric_gradients(total_loss, params))


def test_layer_backward_with_dropout_matches_finite_differences():
    """The gradients of a training call with both dropouts are those of that call's function:
    ``set_random_seed`` before each call makes the layer draw the same masks every time."""
    layer = _layer(dropout=0.3, recurrent_dropout=0.4, return_sequences=True)
    rng = np.random.default_rng(2)
    x, d_out = rng.normal(size=(4, 6, 3)), rng.normal(size=(4, 6, 5))

    def training_call(inputs):
        srn.set_random_seed(7)
        return layer(inputs, training=True)

    def total_loss(p):
        layer.set_weights([p["kernel"], p["recurrent_kernel"], p["bias"]])
        return float((training_call(p["inputs"]) * d_out).sum())

    params = {"inputs": x, **dict(zip(layer.weight_names, layer.get_weights()))}
    assert not np.allclose(training_call(x), layer(x))  # the masks change the result
    training_call(x)
    grads = layer.backward(d_out)
    assert grads.pop("initial_state") is not None
    assert_gradients_close(grads, numeric_gradients(total_loss, params))


def test_stateful_backward_stops_at_the_call_boundary():
    layer = _layer(stateful=True)
    x = np.random.default_rng(4).normal(size=(2, 4, 3))
    layer(x, training=True)
    carried = layer.states[0].copy()
    out = layer(x, training=True)
    grads = layer.backward(np.ones_like(out))
    _, _, cache = srn.forward(x, *layer.weights, initial_state=carried)
    expected = srn.backward(cache, np.ones_like(out))
    for key, value in grads.items():
        np.testing.assert_allclose(value, expected[key], rtol=1e-12)


def test_backward_needs_a_training_call():
    layer = _layer()
    x = np.zeros((2, 4, 3))
    with pytest.raises(RuntimeError, match="call it with training=True"):
        layer.backward(np.ones((2, 5)))
    layer(x, training=True)
    layer(x)
    with pytest.raises(RuntimeError, match="call it with training=True"):
        layer.backward(np.ones((2, 5)))


def test_backward_rejects_bad_gradients():
    layer = _layer()
    layer(np.zeros((2, 4, 3)), training=True)
    with pytest.raises(ValueError, match=r"d_output must have shape \(2, 5\); received shape \(2, 4, 5\)"):
        layer.backward(np.ones((2, 4, 5)))
    with pytest.raises(TypeError, match="d_output must be a float array"):
        layer.backward(np.ones((2, 5), bool))
    with pytest.raises(ValueError, match="return_state=False"):
        layer.backward(np.ones((2, 5)), np.ones((2, 5)))
    state_layer = _layer(return_state=True)
    state_layer(np.zeros((2, 4, 3)), training=True)
    with pytest.raises(ValueError, match=r"d_state must have shape \(2, 5\)"):
        state_layer.backward(None, np.ones((3, 5)))


# ------------------------------------------------------------------ optimizers
@pytest.mark.parametrize("make", [
    lambda lib: lib.SGD(learning_rate=0.1),
    lambda lib: lib.SGD(learning_rate=0.1, momentum=0.9),
    lambda lib: lib.SGD(learning_rate=0.1, momentum=0.8, nesterov=True),
    lambda lib: lib.Adam(learning_rate=0.05),
])
def test_optimizers_match_keras(make):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 2))
    grads = [rng.normal(size=(3, 2)) for _ in range(4)]
    variable = keras.Variable(start, dtype="float64")
    theirs = make(keras.optimizers)
    ours, params = make(srn.optimizers), {"w": start.copy()}
    for grad in grads:
        theirs.apply_gradients([(keras.ops.convert_to_tensor(grad), variable)])
        params = ours.step(params, {"w": grad})
    # Keras keeps the learning rate as a float32 variable
    np.testing.assert_allclose(params["w"], keras.ops.convert_to_numpy(variable), rtol=1e-6,
                               atol=1e-7)
    assert ours.iterations() == 4


def test_apply_updates_layer_then_constrains():
    layer = _layer(kernel_constraint="non_neg")
    layer(np.ones((2, 4, 3)), training=True)
    before = layer.get_weights()
    grads = layer.backward(np.ones((2, 5)))
    SGD(learning_rate=0.5).apply(layer, grads)
    assert (layer.kernel >= 0).all()
    np.testing.assert_allclose(layer.recurrent_kernel, before[1] - 0.5 * grads["recurrent_kernel"])
    frozen = _layer(trainable=False)
    frozen(np.ones((2, 4, 3)), training=True)
    Adam().apply(frozen, frozen.backward(np.ones((2, 5))))
    np.testing.assert_array_equal(frozen.kernel, before[0])


def test_optimizer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="learning_rate must be a finite number > 0"):
        SGD(learning_rate=0)
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\)"):
        SGD(momentum=1.5)
    with pytest.raises(ValueError, match=r"gradient 'w' must have shape \(2,\)"):
        Adam().step({"w": np.zeros(2)}, {"w": np.zeros(3)})


# ------------------------------------------------------------------ example
def test_training_example_reduces_loss_tenfold():
    path = ROOT / "examples" / "train_sequence_sum.py"
    spec = importlib.util.spec_from_file_location("train_sequence_sum", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    losses = example.main(steps=150, verbose=False)
    assert np.mean(losses[:10]) > 10 * np.mean(losses[-10:])
    assert example.main(steps=150, verbose=False) == losses  # seeded: the same run every time
