"""``zero_output_for_mask``: masked steps output zeros, and pass no gradient back.

The golden values were measured on Keras 3.15 (torch backend) with the toy weights of
``_toy`` (see docs/keras_semantics.md); the parity tests compare with Keras itself.
"""

import os

import numpy as np
import pytest

from simplernn_numba import Bidirectional, SimpleRNN
from simplernn_numba.testing import assert_gradients_close, numeric_gradients

X = np.ones((3, 4, 1), np.float32)
MASK = np.array([[1, 1, 0, 0], [0, 1, 0, 1], [0, 0, 0, 0]], bool)
H0 = np.full((3, 1), 5, np.float32)


def _toy(**config):
    """units=1, linear, kernel=1, recurrent=1, bias=0: the state counts the unmasked steps."""
    layer = SimpleRNN(1, activation=None, return_state=True, zero_output_for_mask=True, **config)
    layer.build((None, None, 1))
    layer.set_weights([np.ones((1, 1)), np.ones((1, 1)), np.zeros(1)])
    return layer


@pytest.mark.parametrize("go_backwards, return_sequences, initial_state, output, state", [
    (False, True, H0, [[6, 7, 0, 0], [0, 6, 0, 7], [0, 0, 0, 0]], [7, 7, 5]),
    (False, False, H0, [0, 7, 0], [7, 7, 5]),
    (False, True, None, [[1, 2, 0, 0], [0, 1, 0, 2], [0, 0, 0, 0]], [2, 2, 0]),
    (True, True, H0, [[0, 0, 6, 7], [6, 0, 7, 0], [0, 0, 0, 0]], [7, 7, 5]),
    (True, False, H0, [7, 0, 0], [7, 7, 5]),
])
def test_measured_keras_values(go_backwards, return_sequences, initial_state, output, state):
    layer = _toy(go_backwards=go_backwards, return_sequences=return_sequences)
    got, final = layer(X, mask=MASK, initial_state=initial_state)
    np.testing.assert_array_equal(got[..., 0], output)
    np.testing.assert_array_equal(final[:, 0], state)


def test_without_masked_steps_nothing_changes():
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    ours = SimpleRNN(4, return_sequences=True, zero_output_for_mask=True)
    ours.build(x.shape)
    plain = SimpleRNN(4, return_sequences=True)
    plain.build(x.shape)
    plain.set_weights(ours.get_weights())
    np.testing.assert_array_equal(ours(x), plain(x))
    ones = np.ones((2, 5), bool)  # a mask takes the masked plan (other rounding than none)
    np.testing.assert_array_equal(ours(x, mask=ones), plain(x, mask=ones))


@pytest.mark.parametrize("return_sequences, go_backwards, return_state", [
    (True, False, True), (False, False, False), (True, True, False), (False, True, True),
])
def test_gradients_match_finite_differences(return_sequences, go_backwards, return_state):
    """Masked outputs are constants (zero): their upstream gradient must not reach anything."""
    rng = np.random.default_rng(1)
    layer = SimpleRNN(3, dtype="float64", zero_output_for_mask=True, return_sequences=return_sequences,
                      go_backwards=go_backwards, return_state=return_state, activity_regularizer="l2")
    layer.build((None, None, 2))
    layer.set_weights([rng.normal(scale=0.5, size=w.shape) for w in layer.weights])
    x, h0 = rng.normal(size=(4, 5, 2)), rng.normal(size=(4, 3))
    mask = np.array([[1, 1, 1, 0, 0], [0, 1, 0, 1, 1], [0, 0, 0, 0, 0], [1, 0, 1, 1, 0]], bool)
    d_out = rng.normal(size=(4, 5, 3) if return_sequences else (4, 3))
    d_state = rng.normal(size=(4, 3))

    def total_loss(p):
        layer.set_weights([p["kernel"], p["recurrent_kernel"], p["bias"]])
        result = layer(p["inputs"], mask=mask, initial_state=p["initial_state"])
        out, state = result if return_state else (result, None)
        loss = (out * d_out).sum() + (0 if state is None else (state * d_state).sum())
        return float(loss + sum(layer.losses))

    params = {"inputs": x, "initial_state": h0, **dict(zip(layer.weight_names, layer.get_weights()))}
    layer(x, mask=mask, initial_state=h0, training=True)
    grads = layer.backward(d_out, d_state if return_state else None)
    assert_gradients_close(grads, numeric_gradients(total_loss, params))


def test_masked_outputs_pass_no_gradient():
    layer = _toy(return_sequences=True)
    layer(X.astype(np.float32), mask=MASK, training=True)
    d_out = np.where(MASK[:, :, None], 0, 1).astype(np.float32)  # gradient on masked steps only
    grads = layer.backward(d_out)
    for key in ("inputs", "initial_state", "kernel", "recurrent_kernel", "bias"):
        assert not np.any(grads[key]), key


def test_bidirectional_forces_it_to_return_sequences_as_keras_does():
    for return_sequences in (False, True):
        wrapped = SimpleRNN(2, return_sequences=return_sequences, zero_output_for_mask=not return_sequences)
        backward = SimpleRNN(2, return_sequences=return_sequences, go_backwards=True)
        layer = Bidirectional(wrapped, backward_layer=backward)
        assert layer.forward_layer.zero_output_for_mask is return_sequences
        assert layer.backward_layer.zero_output_for_mask is return_sequences
        assert layer.get_config()["layer"]["config"]["zero_output_for_mask"] is return_sequences


# ---------------------------------------------------------------------------- against Keras 3
@pytest.fixture(scope="module")
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    pytest.importorskip("torch")
    if keras.backend.backend() != "torch":  # pragma: no cover - depends on the environment
        pytest.skip("needs KERAS_BACKEND=torch")
    return keras


@pytest.mark.parametrize("return_sequences, go_backwards", [
    (True, False), (False, False), (True, True), (False, True)])
def test_outputs_and_input_gradients_match_keras(keras, return_sequences, go_backwards):
    import torch

    rng = np.random.default_rng(2)
    config = dict(return_sequences=return_sequences, go_backwards=go_backwards, return_state=True,
                  zero_output_for_mask=True)
    ours = SimpleRNN(4, **config)
    ours.build((None, None, 3))
    ours.set_weights([rng.normal(scale=0.5, size=w.shape) for w in ours.weights])
    theirs = keras.layers.SimpleRNN(4, **config)
    theirs.build((None, None, 3))
    theirs.set_weights(ours.get_weights())
    x = rng.normal(size=(4, 6, 3)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1], [0] * 6, [1, 0, 1, 0, 1, 0]], bool)
    h0 = rng.normal(size=(4, 4)).astype(np.float32)

    out, state = ours(x, mask=mask, initial_state=h0, training=True)
    x_t = torch.tensor(x, requires_grad=True)
    their_out, their_state = theirs(x_t, mask=torch.tensor(mask), initial_state=torch.tensor(h0))
    np.testing.assert_allclose(out, their_out.detach().numpy(), rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(state, their_state.detach().numpy(), rtol=2e-5, atol=2e-6)

    d_out = rng.normal(size=out.shape).astype(np.float32)
    (their_out * torch.tensor(d_out)).sum().backward()
    grads = ours.backward(d_out)
    np.testing.assert_allclose(grads["inputs"], x_t.grad.numpy(), rtol=1e-4, atol=1e-5)
