"""Bidirectional(SimpleRNN): behaviour, and parity with real Keras 3 ``keras.layers.Bidirectional``."""

import itertools
import os

import numpy as np
import pytest

from simplernn_numba import Bidirectional, SimpleRNN
from simplernn_numba.interop.keras import from_keras, to_keras
from simplernn_numba.kernels import reference

os.environ.setdefault("KERAS_BACKEND", "torch")


def _keras():
    keras = pytest.importorskip("keras")
    pytest.importorskip("torch")
    if keras.backend.backend() != "torch":  # pragma: no cover - depends on the environment
        pytest.skip("parity tests need KERAS_BACKEND=torch")
    return keras


def _numpy(keras, value):
    if isinstance(value, (list, tuple)):
        return [keras.ops.convert_to_numpy(v) for v in value]
    return [keras.ops.convert_to_numpy(value)]


def _random_weights(layer, rng):
    layer.set_weights([rng.normal(scale=0.5, size=w.shape) for w in layer.weights])


# every merge mode with four (return_sequences, return_state, masked) combinations
CASES = [(mode, *flags) for mode, flags in itertools.product(
    ["concat", "sum", "mul", "ave", None],
    [(False, False, False), (True, True, True), (True, False, True), (False, True, True)])]


@pytest.mark.parametrize("merge_mode,return_sequences,return_state,masked", CASES)
def test_matches_keras(merge_mode, return_sequences, return_state, masked):
    keras = _keras()
    rng = np.random.default_rng(len(str((merge_mode, return_sequences, return_state, masked))) + masked)
    batch, steps, features, units = 4, 5, 3, 2
    config = dict(return_sequences=return_sequences, return_state=return_state, activation="tanh")
    theirs = keras.layers.Bidirectional(keras.layers.SimpleRNN(units, **config), merge_mode=merge_mode)
    ours = Bidirectional(SimpleRNN(units, **config), merge_mode=merge_mode)
    theirs.build((None, None, features))
    ours.build((None, None, features))
    _random_weights(ours, rng)
    theirs.set_weights(ours.get_weights())
    x = rng.normal(size=(batch, steps, features)).astype(np.float32)
    kwargs = {"initial_state": [rng.normal(size=(batch, units)).astype(np.float32) for _ in range(2)]}
    if masked:
        mask = rng.random((batch, steps)) > 0.4
        mask[0] = False
        mask[1, 0] = mask[1, -1] = False
        mask[2] = True
        kwargs["mask"] = mask
    expected = _numpy(keras, theirs(x, **kwargs))
    got = ours(x, **kwargs)
    got = got if isinstance(got, list) else [got]
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    shapes = ours.compute_output_shape((batch, steps, features))
    shapes = shapes if isinstance(shapes, list) else [shapes]
    assert [tuple(s) for s in shapes] == [a.shape for a in got]


def test_relu_without_bias_default_state_matches_keras():
    keras = _keras()
    rng = np.random.default_rng(7)
    config = dict(activation="relu", use_bias=False, return_sequences=True)
    theirs = keras.layers.Bidirectional(keras.layers.SimpleRNN(3, **config), merge_mode="sum")
    theirs.build((None, None, 2))
    ours = from_keras(theirs)
    x = rng.normal(size=(3, 4, 2)).astype(np.float32)
    np.testing.assert_allclose(ours(x), _numpy(keras, theirs(x))[0], rtol=2e-5, atol=2e-6)


def test_keras_config_round_trip_and_names():
    keras = _keras()
    ours = Bidirectional(SimpleRNN(3, name="rnn", return_sequences=True), merge_mode="ave")
    assert ours.forward_layer.name == "forward_rnn"
    assert ours.backward_layer.name == "backward_rnn"
    assert not ours.forward_layer.go_backwards and ours.backward_layer.go_backwards
    theirs = to_keras(ours)
    assert isinstance(theirs, keras.layers.Bidirectional)
    assert theirs.forward_layer.name == "forward_rnn" and theirs.backward_layer.go_backwards
    back = from_keras(theirs)
    assert back.get_config() == ours.get_config()


def test_built_round_trip_through_keras_is_exact():
    _keras()
    rng = np.random.default_rng(1)
    ours = Bidirectional(SimpleRNN(3, return_sequences=True))
    ours.build((None, None, 2))
    _random_weights(ours, rng)
    back = from_keras(to_keras(ours))
    for a, b in zip(ours.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_go_backwards_layer_without_backward_layer_is_refused_like_keras():
    keras = _keras()
    with pytest.raises(ValueError, match="go_backwards"):
        keras.layers.Bidirectional(keras.layers.SimpleRNN(2, go_backwards=True))
    with pytest.raises(ValueError, match="go_backwards"):
        Bidirectional(SimpleRNN(2, go_backwards=True))


def test_directions_are_two_independent_layers():
    rng = np.random.default_rng(0)
    ours = Bidirectional(SimpleRNN(3, return_sequences=True), merge_mode=None)
    x = rng.normal(size=(2, 4, 5))
    y, y_rev = ours(x)
    fwd, bwd = ours.forward_layer, ours.backward_layer
    expected_fwd, _ = reference.forward(x.astype(np.float32), fwd.kernel, fwd.recurrent_kernel, fwd.bias,
                                        np.zeros((2, 3), np.float32))
    expected_bwd, _ = reference.forward(x.astype(np.float32), bwd.kernel, bwd.recurrent_kernel, bwd.bias,
                                        np.zeros((2, 3), np.float32), go_backwards=True)
    np.testing.assert_allclose(y, expected_fwd, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(y_rev, expected_bwd[:, ::-1], rtol=2e-5, atol=2e-6)
    assert not np.array_equal(fwd.kernel, bwd.kernel)  # fresh weights for each direction


def test_wrapped_layer_weights_are_not_reused_but_weights_argument_is():
    inner = SimpleRNN(2)
    inner.build((None, None, 3))
    weights = [np.full(w.shape, 0.1 * i) for i, w in enumerate(inner.weights * 2)]
    ours = Bidirectional(inner, weights=weights)
    ours.build((None, None, 3))
    for a, b in zip(ours.get_weights(), weights):
        np.testing.assert_array_equal(a, b.astype(np.float32))
    assert ours.count_params() == 2 * inner.count_params()


@pytest.mark.parametrize("bad,match", [
    (dict(merge_mode="max"), "merge mode"),
    (dict(backward_layer=SimpleRNN(2, go_backwards=True, return_sequences=True)), "return_sequences"),
    (dict(backward_layer=SimpleRNN(2)), "go_backwards"),
])
def test_invalid_arguments(bad, match):
    with pytest.raises(ValueError, match=match):
        Bidirectional(SimpleRNN(2), **bad)


def test_invalid_initial_state_and_weights():
    ours = Bidirectional(SimpleRNN(2))
    x = np.zeros((1, 2, 3))
    with pytest.raises(ValueError, match="2 states"):
        ours(x, initial_state=[np.zeros((1, 2))])
    with pytest.raises(ValueError, match="expects 6 weights"):
        ours.set_weights(ours.get_weights()[:3])
    with pytest.raises(TypeError):
        Bidirectional("not a layer")


def test_stateful_directions_carry_state_and_reset():
    ours = Bidirectional(SimpleRNN(2, stateful=True), merge_mode="sum")
    x = np.random.default_rng(2).normal(size=(3, 4, 2))
    first = ours(x)
    assert len(ours.states) == 2
    assert not np.allclose(ours(x), first)
    ours.reset_states()
    np.testing.assert_allclose(ours(x), first, rtol=1e-6)
    with pytest.raises(AttributeError, match="stateful"):
        Bidirectional(SimpleRNN(2)).reset_states()


def test_config_round_trip():
    ours = Bidirectional(SimpleRNN(3, activation="relu", dropout=0.25, seed=4), merge_mode="mul", name="bi")
    again = Bidirectional.from_config(ours.get_config())
    assert again.get_config() == ours.get_config()
    assert again.name == "bi"


def test_stateful_states_travel_to_keras_and_back():
    keras = _keras()
    rng = np.random.default_rng(5)
    ours = Bidirectional(SimpleRNN(2, stateful=True, return_sequences=True), merge_mode="sum")
    ours(rng.normal(size=(3, 4, 2)))  # non-zero states in both directions
    theirs = to_keras(ours)
    for state, keras_state in zip(ours.states, theirs.states, strict=True):
        np.testing.assert_array_equal(state, keras.ops.convert_to_numpy(keras_state))
    back = from_keras(theirs)
    for a, b in zip(back.states, ours.states, strict=True):
        np.testing.assert_array_equal(a, b)
    x = rng.normal(size=(3, 4, 2)).astype(np.float32)
    np.testing.assert_allclose(ours(x), _numpy(keras, theirs(x))[0], rtol=2e-5, atol=2e-6)
