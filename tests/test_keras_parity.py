"""Parity with real Keras 3 (torch backend) over random configurations.

Skipped when keras or torch is not installed; ``.ci/run`` installs both.
"""

import itertools
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytest.importorskip("torch")
if keras.backend.backend() != "torch":  # pragma: no cover - depends on the environment
    pytest.skip("parity tests need KERAS_BACKEND=torch", allow_module_level=True)

from simplernn_numba import SimpleRNN  # noqa: E402

ACTIVATIONS = ["tanh", "relu", "sigmoid", "linear", "elu", "selu", "softplus", "softsign",
               "hard_sigmoid", "exponential", "swish", "gelu"]


def _pair(rng, units, features, batch=None, **config):
    # exp() feeds back into itself: keep its weights small so float32 rounding stays small
    scale = 0.2 if config.get("activation") == "exponential" else 0.4
    ours = SimpleRNN(units, **config)
    ours.build((batch, None, features))
    ours.set_weights([rng.normal(scale=scale, size=w.shape) for w in ours.weights])
    theirs = keras.layers.SimpleRNN(units, **config)
    theirs.build((batch, None, features))
    theirs.set_weights(ours.get_weights())
    return ours, theirs


def _numpy(value):
    if isinstance(value, (list, tuple)):
        return [keras.ops.convert_to_numpy(v) for v in value]
    return keras.ops.convert_to_numpy(value)


def _assert_same(ours, theirs):
    if isinstance(ours, list):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    else:
        np.testing.assert_allclose(ours, theirs, rtol=2e-5, atol=2e-6)


#: The activations above masked, backwards and forwards; tanh, relu and sigmoid without a mask
#: too; relu6, leaky_relu and hard_silu masked and backwards only (test_activations.py compares the
#: functions themselves). An activation's code is the same with and without a mask, and each
#: (activation, optional arrays) pair compiles a kernel variant of its own: the unmasked variants
#: of the others would compile the same activation code again.
UNMASKED = ("tanh", "relu", "sigmoid")
CASES = [*itertools.product(ACTIVATIONS, [True], [False, True]),
         *itertools.product(UNMASKED, [False], [False, True]),
         *((activation, True, True) for activation in ("relu6", "leaky_relu", "hard_silu"))]


@pytest.mark.parametrize("activation,masked,go_backwards", CASES)
def test_matches_keras(activation, masked, go_backwards):
    # a stable seed: hash() of a str is salted per process (PYTHONHASHSEED), which made this flaky
    rng = np.random.default_rng([CASES.index((activation, masked, go_backwards))])
    batch, steps, features, units = 4, 6, 3, 5
    use_bias = bool(rng.integers(2))
    return_sequences = bool(rng.integers(2))
    ours, theirs = _pair(rng, units, features, activation=activation, use_bias=use_bias,
                         return_sequences=return_sequences, return_state=True,
                         go_backwards=go_backwards)
    x = rng.normal(size=(batch, steps, features)).astype(np.float32)
    h0 = rng.normal(size=(batch, units)).astype(np.float32)
    kwargs = {"initial_state": [h0]}
    if masked:
        mask = rng.random((batch, steps)) > 0.4
        mask[0] = False  # a fully masked row
        mask[1, 0] = mask[1, -1] = False  # first and last steps masked
        kwargs["mask"] = mask
    _assert_same(ours(x, **kwargs), _numpy(theirs(x, **kwargs)))


def test_stateful_sequence_of_calls_matches_keras():
    rng = np.random.default_rng(3)
    ours, theirs = _pair(rng, 4, 2, batch=3, stateful=True, return_sequences=True)
    for _ in range(3):
        x = rng.normal(size=(3, 5, 2)).astype(np.float32)
        _assert_same(ours(x), _numpy(theirs(x)))
    ours.reset_states()
    theirs.reset_state()
    x = rng.normal(size=(3, 5, 2)).astype(np.float32)
    _assert_same(ours(x), _numpy(theirs(x)))


def test_default_layer_without_initial_state_matches_keras():
    rng = np.random.default_rng(9)
    ours, theirs = _pair(rng, 6, 4)
    x = rng.normal(size=(8, 10, 4)).astype(np.float32)
    _assert_same(ours(x), _numpy(theirs(x)))
