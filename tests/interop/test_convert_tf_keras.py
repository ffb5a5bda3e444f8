"""Config and weights to and from Keras 2 (``tf_keras``); skipped unless tf_keras is installed.

TensorFlow is too heavy for the test extra, so CI skips this file; run it in an
environment with ``pip install tensorflow-cpu tf_keras``.
"""

import numpy as np
import pytest

from simplernn_numba import SimpleRNN
from simplernn_numba.interop.keras import from_keras, to_keras

tf_keras = pytest.importorskip("tf_keras")
tf = pytest.importorskip("tensorflow")


def _random(layer, rng):
    layer.set_weights([rng.normal(scale=0.4, size=w.shape) for w in layer.weights])


@pytest.mark.parametrize("activation", ["tanh", "relu", "selu"])
@pytest.mark.parametrize("masked", [False, True])
def test_to_and_from_tf_keras_match(activation, masked):
    rng = np.random.default_rng(0)
    ours = SimpleRNN(4, activation=activation, return_sequences=True, return_state=True, go_backwards=masked,
                     kernel_regularizer="l2", bias_constraint="non_neg", recurrent_initializer="identity")
    ours.build((None, None, 3))
    _random(ours, rng)
    theirs = to_keras(ours, "tf_keras")
    assert isinstance(theirs, tf_keras.layers.SimpleRNN)
    x = rng.normal(size=(2, 5, 3)).astype(np.float32)
    kwargs = {"initial_state": [rng.normal(size=(2, 4)).astype(np.float32)]}
    if masked:
        kwargs["mask"] = rng.random((2, 5)) > 0.3
    tf_kwargs = {key: [tf.constant(v) for v in value] if key == "initial_state" else tf.constant(value)
                 for key, value in kwargs.items()}
    for a, b in zip(ours(x, **kwargs), theirs(x, **tf_kwargs), strict=True):
        np.testing.assert_allclose(a, np.asarray(b), rtol=2e-5, atol=2e-6)
    back = from_keras(theirs)
    expected = {**ours.get_config(), "seed": None}  # Keras 2 has no seed
    assert back.get_config() == expected
    for a, b in zip(back.get_weights(), ours.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_bidirectional_tf_keras():
    rng = np.random.default_rng(1)
    theirs = tf_keras.layers.Bidirectional(tf_keras.layers.SimpleRNN(3, return_sequences=True),
                                           merge_mode="ave")
    theirs.build((None, None, 2))
    theirs.set_weights([rng.normal(size=w.shape) for w in theirs.get_weights()])
    ours = from_keras(theirs)
    x = rng.normal(size=(2, 4, 2)).astype(np.float32)
    mask = np.array([[1, 1, 0, 1], [0, 1, 1, 0]], bool)
    np.testing.assert_allclose(ours(x, mask=mask), np.asarray(theirs(x, mask=mask)), rtol=2e-5, atol=2e-6)
    again = to_keras(ours, "tf_keras")
    np.testing.assert_allclose(np.asarray(again(x, mask=mask)), ours(x, mask=mask), rtol=2e-5, atol=2e-6)


def test_stateful_tf_keras_state_travels():
    rng = np.random.default_rng(2)
    ours = SimpleRNN(3, stateful=True)
    ours(rng.normal(size=(2, 4, 2)))
    theirs = to_keras(ours, "tf_keras")
    np.testing.assert_array_equal(np.asarray(theirs.states[0]), ours.states[0])
    x = rng.normal(size=(2, 4, 2)).astype(np.float32)
    np.testing.assert_allclose(ours(x), np.asarray(theirs(x)), rtol=2e-5, atol=2e-6)


def test_keras2_hard_sigmoid_is_refused():
    with pytest.raises(ValueError, match="hard_sigmoid"):
        from_keras(tf_keras.layers.SimpleRNN(2, activation="hard_sigmoid"))
    with pytest.raises(ValueError, match="hard_sigmoid"):
        to_keras(SimpleRNN(2, activation="hard_sigmoid"), "tf_keras")
