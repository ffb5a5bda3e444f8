"""load_model on files written by Keras 3 (torch backend): outputs equal Keras' predict.

Every model is built, randomly weighted and saved once per module; the inputs have
pre-padding, post-padding, a hole and a fully masked row.
"""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from simplernn_numba import Bidirectional, SimpleRNN, load, save
from simplernn_numba.interop.keras import ModelFileError, UnsupportedLayerError, load_model
from simplernn_numba.interop.saving import LoadError

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytest.importorskip("torch")
pytest.importorskip("h5py")

B, T, F, VOCAB = 5, 7, 3, 12
RTOL, ATOL = 1e-5, 1e-6


def _tokens(rng):
    x = rng.integers(1, VOCAB, size=(B, T))
    x[0, 4:] = 0   # post-padding
    x[1, :3] = 0   # pre-padding
    x[2, 2] = 0    # a hole
    x[3, 1:5:2] = 0
    x[4, :] = 0    # every step masked
    return x


def _floats(rng):
    x = rng.normal(size=(B, T, F)).astype("float32")
    x[_tokens(rng) == 0] = 0.0  # the same patterns through Masking
    return x


def _functional_embedding():
    layers = keras.layers
    inp = keras.Input((None,), dtype="int32")
    h = layers.Embedding(VOCAB, 4, mask_zero=True)(inp)
    h = layers.SimpleRNN(5, return_sequences=True)(h)
    h = layers.Bidirectional(layers.SimpleRNN(3, activation="relu"))(h)
    h = layers.Dropout(0.3)(h)
    return keras.Model(inp, layers.Dense(2, activation="softmax")(h)), _tokens


def _functional_masking():
    layers = keras.layers
    inp = keras.Input((None, F))
    h = layers.Masking()(inp)
    h = layers.SimpleRNN(5, return_sequences=True, go_backwards=True)(h)
    h = layers.TimeDistributed(layers.Dense(4, activation="sigmoid"))(h)
    h = layers.Activation("selu")(h)
    h = layers.GaussianNoise(0.5)(h)
    h = layers.SimpleRNN(3, activation="relu", return_sequences=True, zero_output_for_mask=True)(h)
    return keras.Model(inp, h), _floats


def _sequential():
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((None, F)), layers.Masking(), layers.Dense(4),
        layers.SimpleRNN(4, return_sequences=True), layers.SpatialDropout1D(0.2),
        layers.TimeDistributed(layers.Dense(2)), layers.SimpleRNN(3, use_bias=False),
    ])
    return model, _floats


def _merge_modes():
    """Every merge mode, each followed by a layer that uses the mask it passes on; a backward_layer."""
    layers = keras.layers
    inp = keras.Input((None, F))
    h = layers.Masking()(inp)
    outputs = []
    for mode in ("concat", "sum", "mul", "ave"):
        y = layers.Bidirectional(layers.SimpleRNN(3, return_sequences=True), merge_mode=mode)(h)
        outputs += [y, layers.SimpleRNN(2)(y)]
    outputs += layers.Bidirectional(layers.SimpleRNN(2, return_sequences=True), merge_mode=None)(h)
    outputs += layers.Bidirectional(layers.SimpleRNN(2, return_state=True), merge_mode="concat")(h)
    custom = layers.SimpleRNN(2, activation="relu", return_sequences=True, go_backwards=True)
    outputs.append(layers.Bidirectional(layers.SimpleRNN(2, return_sequences=True), backward_layer=custom)(h))
    return keras.Model(inp, outputs), _floats


def _states_and_two_inputs():
    """return_state outputs, and an initial state given as the model's second input."""
    layers = keras.layers
    tokens, state = keras.Input((None,), dtype="int32"), keras.Input((4,))
    h = layers.Embedding(VOCAB, 3, mask_zero=True)(tokens)
    seq, last = layers.SimpleRNN(4, return_sequences=True, return_state=True)(h, initial_state=[state])
    out = layers.SimpleRNN(4)(seq)
    return keras.Model([tokens, state], [out, last, layers.Dense(3, activation="tanh")(seq)]), \
        lambda rng: [_tokens(rng), rng.normal(size=(B, 4)).astype("float32")]


MODELS = {"functional_embedding": _functional_embedding, "functional_masking": _functional_masking,
          "sequential": _sequential, "merge_modes": _merge_modes,
          "states_and_two_inputs": _states_and_two_inputs}


def _randomize(model, rng):
    for variable in model.weights:
        variable.assign(rng.normal(scale=0.6, size=variable.shape).astype("float32"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """{name: (path, inputs, Keras' predict)} for every model of MODELS, as .keras files."""
    folder = tmp_path_factory.mktemp("keras_files")
    rng = np.random.default_rng(29)
    found = {}
    for name, make in MODELS.items():
        model, inputs = make()
        _randomize(model, rng)
        x = inputs(rng)
        path = folder / f"{name}.keras"
        model.save(path)
        found[name] = (path, x, model.predict(x, verbose=0))
    return found


def _assert_same(got, expected):
    got, expected = (got, expected) if isinstance(expected, list) else ([got], [expected])
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a, keras.ops.convert_to_numpy(b), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", MODELS)
def test_predict_equals_keras(saved, name):
    path, x, expected = saved[name]
    model = load_model(path)
    _assert_same(model.predict(x), expected)
    _assert_same(model.predict(x, batch_size=2), expected)  # rows are independent


def test_legacy_h5_from_keras3(tmp_path):
    model, inputs = _functional_masking()
    rng = np.random.default_rng(1)
    _randomize(model, rng)
    x = inputs(rng)
    model.save(tmp_path / "model.h5")
    _assert_same(load_model(tmp_path / "model.h5").predict(x), model.predict(x, verbose=0))


def test_layers_are_ours_and_usable(saved, tmp_path):
    path, x, _ = saved["functional_embedding"]
    model = load_model(path, device="cpu")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Embedding", "SimpleRNN", "Bidirectional", "Identity", "Dense"]
    name = model.layers[1].name  # Keras numbers default names per process: simple_rnn, simple_rnn_1
    rnn, bi = model.get_layer(name), model.layers[2]
    assert name.startswith("simple_rnn") and rnn is model.layers[1]
    assert isinstance(rnn, SimpleRNN) and isinstance(bi, Bidirectional) and bi.merge_mode == "concat"
    model.predict(x)
    assert rnn.last_call.device == "cpu"
    save(rnn, tmp_path / "rnn.npz")
    assert load(tmp_path / "rnn.npz").get_config() == rnn.get_config()
    text = model.summary()
    assert f"{name} (SimpleRNN)" in text and f"Total params: {model.count_params()}" in text
    assert repr(model).startswith("KerasModel('functional")


def test_input_checks(saved):
    path, x, _ = saved["functional_embedding"]
    model = load_model(path)
    with pytest.raises(ValueError, match=r"expects shape \(None, None\); received \(5, 7, 1\)"):
        model.predict(x[..., None])
    with pytest.raises(ValueError, match=r"indices must be in \[0, 12\)"):
        model.predict(x + VOCAB)
    with pytest.raises(ValueError, match="takes 1 inputs; received 2"):
        model.predict([x, x])
    with pytest.raises(ValueError, match="batch_size"):
        model.predict(x, batch_size=0)


# ---------------------------------------------------------------------- refusals
def _save(model, path):
    model.save(path)
    return path


@pytest.mark.parametrize("make, match", [
    (lambda: keras.layers.LSTM(3, name="my_lstm"), r"'my_lstm' \(LSTM\) is not supported; load_model "
                                                   r"supports InputLayer, Embedding, Masking, SimpleRNN"),
    (lambda: keras.layers.Conv1D(3, 2, name="conv"), r"'conv' \(Conv1D\) is not supported"),
    (lambda: keras.layers.Lambda(lambda t: t * 2, name="double"), r"'double' \(Lambda\).*Python code"),
    (lambda: keras.layers.SimpleRNN(3, dtype="mixed_float16", name="half"),
     r"'half' \(SimpleRNN\).*mixed_float16.*only float32 and float64"),
    (lambda: keras.layers.Bidirectional(keras.layers.LSTM(2), name="bi"),
     r"'bi' \(Bidirectional\): only Bidirectional\(SimpleRNN\) is supported; it wraps LSTM"),
    (lambda: keras.layers.TimeDistributed(keras.layers.LayerNormalization(), name="td"),
     r"'td' \(TimeDistributed\): only TimeDistributed\(Dense\)"),
])
def test_refused_layers_name_class_and_name(tmp_path, make, match):
    model = keras.Sequential([keras.Input((None, F)), make()])
    path = _save(model, tmp_path / "m.keras")
    with pytest.raises(UnsupportedLayerError, match=match):
        load_model(path)


def test_custom_object_refused(tmp_path):
    @keras.saving.register_keras_serializable(package="mine")
    class Twice(keras.layers.Layer):
        def call(self, inputs):
            return inputs * 2

    path = _save(keras.Sequential([keras.Input((None, F)), Twice(name="twice")]), tmp_path / "m.keras")
    with pytest.raises(UnsupportedLayerError, match=r"'twice' \(Twice\) is a custom object"):
        load_model(path)


def _rewrite(source, target, **members):
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for name in old.namelist():
            if name in members:
                if members[name] is not None:
                    new.writestr(name, members[name])
            else:
                new.writestr(name, old.read(name))
    return target


def test_broken_files_raise_the_load_error(saved, tmp_path):
    path, _, _ = saved["functional_embedding"]
    data = path.read_bytes()
    config = json.loads(zipfile.ZipFile(path).read("config.json"))
    config["config"]["layers"][1]["config"]["output_dim"] = 5  # weights no longer fit

    def history(layer_index, source):
        graph = json.loads(zipfile.ZipFile(path).read("config.json"))
        tensor = graph["config"]["layers"][layer_index]["inbound_nodes"][0]["args"][0]
        tensor["config"]["keras_history"] = source
        return json.dumps(graph)

    layers = config["config"]["layers"]
    (dense,) = [layer["config"]["name"] for layer in layers if layer["class_name"] == "Dense"]
    cases = {
        "truncated.keras": data[: len(data) // 2],
        "garbage.keras": b"not a model" * 10,
        "truncated_weights.keras": _rewrite(path, tmp_path / "w.keras", **{
            "model.weights.h5": zipfile.ZipFile(path).read("model.weights.h5")[:300]}).read_bytes(),
        "no_config.keras": _rewrite(path, tmp_path / "c.keras", **{"config.json": None}).read_bytes(),
        "bad_json.keras": _rewrite(path, tmp_path / "j.keras", **{"config.json": "{"}).read_bytes(),
        "version.keras": _rewrite(path, tmp_path / "v.keras", **{
            "metadata.json": json.dumps({"keras_version": "4.0.0"})}).read_bytes(),
        "shapes.keras": _rewrite(path, tmp_path / "s.keras", **{
            "config.json": json.dumps(config)}).read_bytes(),
        "missing_layer.keras": _rewrite(path, tmp_path / "m.keras", **{
            "config.json": history(6, ["nowhere", 0, 0])}).read_bytes(),
        "cycle.keras": _rewrite(path, tmp_path / "y.keras", **{
            "config.json": history(1, [dense, 0, 0])}).read_bytes(),
    }
    messages = {"truncated.keras": "cannot read", "truncated_weights.keras": "cannot read",
                "no_config.keras": "missing",
                "bad_json.keras": "not valid JSON", "version.keras": "Keras '4.0.0'",
                "shapes.keras": r"weights of shapes \[\(12, 4\)\]", "garbage.keras": "neither",
                "missing_layer.keras": "missing call 0 of layer 'nowhere'",
                "cycle.keras": "a cycle through"}
    for name, content in cases.items():
        broken = tmp_path / name
        broken.write_bytes(content)
        with pytest.raises(ModelFileError, match=messages[name]) as error:
            load_model(broken)
        assert isinstance(error.value, LoadError) and isinstance(error.value, ValueError)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.keras")


def test_weights_only_h5_refused(saved, tmp_path):
    model = keras.Sequential([keras.Input((None, F)), keras.layers.SimpleRNN(2)])
    model.save_weights(tmp_path / "only.weights.h5")
    with pytest.raises(ModelFileError, match="without a model config"):
        load_model(tmp_path / "only.weights.h5")


_BLOCKED = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras", "tf_keras", "torch", "jax"):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import numpy as np
from simplernn_numba.interop.keras import load_model
model = load_model(sys.argv[1])
np.save(sys.argv[3], model.predict(np.load(sys.argv[2])))
print(sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras", "torch")))
"""


def test_loads_where_keras_tensorflow_and_torch_cannot_be_imported(saved, tmp_path):
    path, x, expected = saved["functional_embedding"]
    np.save(tmp_path / "x.npy", x)
    out = subprocess.run([sys.executable, "-c", _BLOCKED, str(path), str(tmp_path / "x.npy"),
                          str(tmp_path / "y.npy")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
    _assert_same(np.load(tmp_path / "y.npy"), expected)


def test_stateful_model_carries_its_state_as_keras(tmp_path):
    model = keras.Sequential([keras.Input(batch_shape=(B, None, F)),
                              keras.layers.SimpleRNN(3, stateful=True)])
    rng = np.random.default_rng(3)
    _randomize(model, rng)
    model.save(tmp_path / "stateful.keras")
    ours = load_model(tmp_path / "stateful.keras")
    for _ in range(2):  # the second call starts from the state the first one left
        x = rng.normal(size=(B, T, F)).astype("float32")
        _assert_same(ours.predict(x), model.predict(x, verbose=0))


_NO_H5PY = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "h5py":
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
from simplernn_numba.interop.keras import load_model
try:
    load_model(sys.argv[1])
except ImportError as error:
    print(error)
"""


def test_without_h5py_the_error_names_the_extra(saved):
    path = saved["sequential"][0]
    out = subprocess.run([sys.executable, "-c", _NO_H5PY, str(path)], capture_output=True, text=True)
    assert 'pip install "simplernn_numba[h5]"' in out.stdout, out.stderr


def test_float64_model(tmp_path):
    model = keras.Sequential([keras.Input((None, F)), keras.layers.Masking(),
                              keras.layers.SimpleRNN(4, return_sequences=True, dtype="float64"),
                              keras.layers.Dense(2, dtype="float64")])
    rng = np.random.default_rng(4)
    for variable in model.weights:
        variable.assign(rng.normal(scale=0.6, size=variable.shape))
    model.save(tmp_path / "f64.keras")
    x = _floats(rng)
    ours = load_model(tmp_path / "f64.keras")
    assert ours.layers[1].dtype == "float64"
    got = ours.predict(x)
    assert got.dtype == np.float64
    # float32 tolerance: Keras' torch backend differs from float64 math by ~1e-7
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(model.predict(x, verbose=0)), rtol=RTOL,
                               atol=ATOL)
