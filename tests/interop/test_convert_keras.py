"""Config and weights to and from Keras 3 ``keras.layers.SimpleRNN`` (torch backend)."""

import os

import numpy as np
import pytest

from simplernn_numba import SimpleRNN
from simplernn_numba.interop.keras import from_keras, to_keras

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytest.importorskip("torch")
if keras.backend.backend() != "torch":  # pragma: no cover - depends on the environment
    pytest.skip("parity tests need KERAS_BACKEND=torch", allow_module_level=True)

FULL_CONFIG = dict(
    activation="selu", use_bias=True, kernel_initializer={"class_name": "RandomNormal",
                                                          "config": {"mean": 0.1, "stddev": 0.2, "seed": 3}},
    recurrent_initializer="identity", bias_initializer={"class_name": "Constant", "config": {"value": 0.5}},
    kernel_regularizer={"class_name": "L1L2", "config": {"l1": 0.1, "l2": 0.2}},
    recurrent_regularizer="l2", bias_regularizer="l1", activity_regularizer="l2",
    kernel_constraint={"class_name": "MaxNorm", "config": {"max_value": 3.0, "axis": 0}},
    recurrent_constraint="non_neg", bias_constraint="unit_norm", dropout=0.25, recurrent_dropout=0.125,
    return_sequences=True, return_state=True, go_backwards=True, unroll=False, seed=11, name="full",
    trainable=False, zero_output_for_mask=True,
)


def _numpy(value):
    if isinstance(value, (list, tuple)):
        return [keras.ops.convert_to_numpy(v) for v in value]
    return [keras.ops.convert_to_numpy(value)]


def _assert_outputs_equal(ours, theirs, x, **kwargs):
    got = ours(x, **kwargs)
    got = got if isinstance(got, list) else [got]
    expected = _numpy(theirs(x, **kwargs))
    # float32 tolerance for float64 too: Keras' torch backend differs from float64 math by ~1e-7
    for a, b in zip(got, expected, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_to_keras_every_config_field_and_outputs(dtype):
    rng = np.random.default_rng(0)
    ours = SimpleRNN(4, dtype=dtype, **FULL_CONFIG)
    ours.build((None, None, 3))
    ours.set_weights([rng.normal(scale=0.4, size=w.shape) for w in ours.weights])
    theirs = to_keras(ours)
    config = theirs.get_config()
    for key in ("units", "activation", "use_bias", "dropout", "recurrent_dropout", "return_sequences",
                "return_state", "go_backwards", "unroll", "name", "trainable", "zero_output_for_mask"):
        assert config[key] == ours.get_config()[key], key
    assert theirs.cell.seed == 11 and theirs.dtype == dtype
    assert config["kernel_initializer"]["config"]["stddev"] == 0.2
    assert config["kernel_regularizer"]["config"] == {"l1": 0.1, "l2": 0.2}
    assert config["kernel_constraint"]["config"]["max_value"] == 3.0
    x = rng.normal(size=(2, 5, 3)).astype(dtype)
    mask = rng.random((2, 5)) > 0.3
    _assert_outputs_equal(ours, theirs, x, mask=mask, initial_state=[np.ones((2, 4), dtype)])
    ours.trainable = theirs.trainable = True  # Keras reports no weight penalties for a frozen layer
    _assert_outputs_equal(ours, theirs, x)
    # weights and activity (set on the Keras layer although Keras 3's SimpleRNN drops the argument);
    # Keras lists the activity terms first
    penalties = sorted(float(keras.ops.convert_to_numpy(v)) for v in theirs.losses)
    assert len(ours.losses) == 5
    assert sorted(ours.losses) == pytest.approx(penalties, rel=1e-5)


def test_round_trip_ours_keras_ours_is_exact():
    rng = np.random.default_rng(1)
    ours = SimpleRNN(4, **{**FULL_CONFIG, "unroll": True})  # Keras' torch backend cannot run unroll
    ours.build((None, None, 3))                              # with masks, so only the config is checked
    ours.set_weights([rng.normal(size=w.shape) for w in ours.weights])
    back = from_keras(to_keras(ours))
    assert back.get_config() == ours.get_config()
    for a, b in zip(ours.get_weights(), back.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("activation", ["tanh", "relu", "gelu", "hard_sigmoid"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_from_keras_matches_keras(activation, use_bias):
    rng = np.random.default_rng(2)
    theirs = keras.layers.SimpleRNN(3, activation=activation, use_bias=use_bias, return_sequences=True,
                                    kernel_initializer="he_normal", bias_initializer="random_uniform")
    theirs.build((None, None, 2))
    ours = from_keras(theirs)
    x = rng.normal(size=(3, 4, 2)).astype(np.float32)
    _assert_outputs_equal(ours, theirs, x)


def test_unbuilt_layers_convert_config_only():
    theirs = keras.layers.SimpleRNN(5, activation=None, kernel_initializer="glorot_normal")
    ours = from_keras(theirs)
    assert not ours.built and ours.get_config()["activation"] == "linear"
    assert not to_keras(SimpleRNN(2)).built


def test_stateful_state_travels_both_ways():
    rng = np.random.default_rng(3)
    ours = SimpleRNN(3, stateful=True, return_sequences=True)
    ours(rng.normal(size=(2, 4, 2)))  # leaves a non-zero state
    theirs = to_keras(ours)
    np.testing.assert_array_equal(_numpy(theirs.states[0])[0], ours.states[0])
    x = rng.normal(size=(2, 4, 2)).astype(np.float32)
    back = from_keras(theirs)
    np.testing.assert_array_equal(back.states[0], ours.states[0])
    _assert_outputs_equal(ours, theirs, x)


def test_refusals():
    with pytest.raises(TypeError, match="SimpleRNN"):
        from_keras(keras.layers.GRU(2))
    with pytest.raises(ValueError, match="input_axes"):
        from_keras(keras.layers.SimpleRNN(
            2, kernel_initializer=keras.initializers.GlorotUniform(input_axes=[0])))
    with pytest.raises(ValueError, match="mixed precision"):
        from_keras(keras.layers.SimpleRNN(2, dtype="mixed_float16"))
    with pytest.raises(ValueError, match="Python-callable activation"):
        to_keras(SimpleRNN(2, activation=lambda z: z))
