"""load_model on legacy ``.h5`` files written by Keras 2 (``tf_keras``); skipped unless it is installed.

TensorFlow is too heavy for the test extra (and pins an older h5py), so CI skips this file;
run it in an environment with ``pip install tensorflow-cpu tf_keras h5py``. The models are
built and saved once per module; inputs have pre-padding, post-padding, holes and a fully
masked row.
"""

import numpy as np
import pytest

from simplernn_numba import Bidirectional, SimpleRNN
from simplernn_numba.interop.keras import UnsupportedLayerError, load_model

tf_keras = pytest.importorskip("tf_keras")
pytest.importorskip("tensorflow")
pytest.importorskip("h5py")

B, T, F, VOCAB = 5, 7, 3, 12


def _tokens(rng):
    x = rng.integers(1, VOCAB, size=(B, T))
    x[0, 4:] = 0
    x[1, :3] = 0
    x[2, 2] = 0
    x[3, 1:5:2] = 0
    x[4, :] = 0
    return x


def _floats(rng):
    x = rng.normal(size=(B, T, F)).astype("float32")
    x[_tokens(rng) == 0] = 0.0
    return x


def _functional():
    layers = tf_keras.layers
    inp = tf_keras.Input((None,), dtype="int32")
    h = layers.Embedding(VOCAB, 4, mask_zero=True)(inp)
    h = layers.SimpleRNN(5, return_sequences=True)(h)
    h = layers.Bidirectional(layers.SimpleRNN(3, return_sequences=True), merge_mode="sum")(h)
    h = layers.TimeDistributed(layers.Dense(3, activation="selu"))(h)
    h = layers.SimpleRNN(2, activation="relu")(layers.SpatialDropout1D(0.1)(h))
    return tf_keras.Model(inp, layers.Dense(2, activation="softmax")(layers.Dropout(0.2)(h))), _tokens


def _sequential():
    layers = tf_keras.layers
    model = tf_keras.Sequential([
        layers.Masking(input_shape=(None, F)), layers.Dense(4),
        layers.SimpleRNN(4, return_sequences=True, go_backwards=True), layers.Activation("tanh"),
        layers.GaussianNoise(0.3), layers.TimeDistributed(layers.Dense(2)), layers.Dropout(0.2),
        layers.SimpleRNN(2, activation="relu", return_sequences=True),  # uses the mask passed on
    ])
    return model, _floats


def _merge_modes_and_states():
    layers = tf_keras.layers
    inp, state = tf_keras.Input((None, F)), tf_keras.Input((3,))
    h = layers.Masking()(inp)
    outputs = []
    for mode in ("concat", "mul", "ave"):
        y = layers.Bidirectional(layers.SimpleRNN(3, return_sequences=True), merge_mode=mode)(h)
        outputs += [y, layers.SimpleRNN(2)(y)]
    outputs += layers.Bidirectional(layers.SimpleRNN(2, return_sequences=True), merge_mode=None)(h)
    seq, last = layers.SimpleRNN(3, return_sequences=True, return_state=True)(h, initial_state=[state])
    outputs += [seq, last, layers.SimpleRNN(2)(seq)]
    return tf_keras.Model([inp, state], outputs), \
        lambda rng: [_floats(rng), rng.normal(size=(B, 3)).astype("float32")]


MODELS = {"functional": _functional, "sequential": _sequential,
          "merge_modes_and_states": _merge_modes_and_states}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tf_keras_files")
    rng = np.random.default_rng(2)
    found = {}
    for name, make in MODELS.items():
        model, inputs = make()
        model.set_weights([rng.normal(scale=0.6, size=w.shape) for w in model.get_weights()])
        x = inputs(rng)
        path = folder / f"{name}.h5"
        model.save(path)
        found[name] = (path, x, model.predict(x, verbose=0))
    return found


@pytest.mark.parametrize("name", MODELS)
def test_predict_equals_tf_keras(saved, name):
    path, x, expected = saved[name]
    model = load_model(path)
    got = model.predict(x)
    got, expected = (got, expected) if isinstance(expected, list) else ([got], [expected])
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_layers_are_ours(saved):
    model = load_model(saved["functional"][0])
    assert model.keras_version.startswith("2.")
    assert [type(layer) for layer in model.layers[1:3]] == [SimpleRNN, Bidirectional]


def test_keras2_hard_sigmoid_refused(tmp_path):
    model = tf_keras.Sequential([tf_keras.layers.SimpleRNN(2, activation="hard_sigmoid", name="hs",
                                                           input_shape=(None, F))])
    model.save(tmp_path / "hs.h5")
    with pytest.raises(UnsupportedLayerError, match=r"'hs' \(SimpleRNN\).*hard_sigmoid"):
        load_model(tmp_path / "hs.h5")
