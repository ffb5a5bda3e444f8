"""Save/load to .npz without pickle: round trips, and crafted or corrupt files rejected."""

import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

from simplernn_numba import Bidirectional, SimpleRNN, load, save
from simplernn_numba.interop.saving import LoadError

FULL_CONFIG = dict(
    activation="softsign", use_bias=True,
    kernel_initializer={"class_name": "RandomNormal", "config": {"mean": 0.1, "stddev": 0.2, "seed": 3}},
    recurrent_initializer={"class_name": "Orthogonal", "config": {"gain": 0.5, "seed": 1}},
    bias_initializer={"class_name": "Constant", "config": {"value": 0.25}},
    kernel_regularizer={"class_name": "L1L2", "config": {"l1": 0.1, "l2": 0.2}},
    recurrent_regularizer="l2", bias_regularizer="l1", activity_regularizer="l2",
    kernel_constraint={"class_name": "MaxNorm", "config": {"max_value": 3.0, "axis": 0}},
    recurrent_constraint="non_neg", bias_constraint="unit_norm", dropout=0.25, recurrent_dropout=0.125,
    return_sequences=True, return_state=True, go_backwards=True, unroll=True, seed=11, name="full",
    trainable=False, stateful=True, zero_output_for_mask=True,
)


@pytest.fixture
def saved(tmp_path):
    layer = SimpleRNN(3)
    layer(np.ones((2, 4, 5), np.float32))
    path = tmp_path / "layer.npz"
    save(layer, path)
    return layer, path


def _members(path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _write(path, members: dict) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _npy(array, allow_pickle=False) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=allow_pickle)
    return buffer.getvalue()


def _header(path) -> dict:
    return json.loads(np.load(path)["header"].tobytes())


def _with_header(path, out, **changes):
    header = {**_header(path), **changes}
    members = _members(path)
    members["header.npy"] = _npy(np.frombuffer(json.dumps(header).encode(), np.uint8))
    _write(out, members)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_round_trip_every_config_field(tmp_path, dtype):
    rng = np.random.default_rng(0)
    layer = SimpleRNN(4, dtype=dtype, **FULL_CONFIG)
    layer.build((None, None, 3))
    layer.set_weights([rng.normal(size=w.shape) for w in layer.weights])
    save(layer, tmp_path / "full.npz")
    loaded = load(tmp_path / "full.npz")
    assert loaded.get_config() == layer.get_config()
    assert set(loaded.get_config()) == set(FULL_CONFIG) | {"units", "dtype"}
    for a, b in zip(loaded.get_weights(), layer.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == np.dtype(dtype)
    x = rng.normal(size=(2, 5, 3))
    for a, b in zip(loaded(x), layer(x), strict=True):
        np.testing.assert_array_equal(a, b)


def test_round_trip_without_bias_and_stateful_state(tmp_path):
    rng = np.random.default_rng(1)
    layer = SimpleRNN(2, use_bias=False, stateful=True, activation="relu")
    layer(rng.normal(size=(3, 4, 2)))
    save(layer, tmp_path / "s.npz")
    assert set(np.load(tmp_path / "s.npz")) == {"header", "kernel", "recurrent_kernel", "state"}
    loaded = load(tmp_path / "s.npz", device="cpu")
    np.testing.assert_array_equal(loaded.states[0], layer.states[0])
    assert loaded.device == "cpu"
    x = rng.normal(size=(3, 4, 2))
    np.testing.assert_array_equal(loaded(x), layer(x))


def test_bidirectional_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    layer = Bidirectional(SimpleRNN(3, return_sequences=True, stateful=True), merge_mode="mul", name="bi")
    x = rng.normal(size=(2, 4, 5))
    layer(x)
    save(layer, tmp_path / "bi.npz")
    loaded = load(tmp_path / "bi.npz")
    assert loaded.get_config() == layer.get_config()
    assert isinstance(loaded, Bidirectional)
    np.testing.assert_array_equal(loaded(x), layer(x))


def test_file_object_round_trip():
    layer = SimpleRNN(2)
    layer.build((None, None, 1))
    buffer = io.BytesIO()
    save(layer, buffer)
    buffer.seek(0)
    assert load(buffer).get_config() == layer.get_config()


@pytest.mark.parametrize("layer,match", [
    (SimpleRNN(2, activation=lambda z: z), "Python-callable activation"),
    (SimpleRNN(2, kernel_regularizer=lambda w: 0.0), "Python callable as kernel_regularizer"),
])
def test_save_refuses_what_a_file_cannot_hold(tmp_path, layer, match):
    layer.build((None, None, 2))
    with pytest.raises(ValueError, match=match):
        save(layer, tmp_path / "x.npz")
    with pytest.raises(ValueError, match="not built"):
        save(SimpleRNN(2), tmp_path / "y.npz")


class _Boom:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_pickled_object_array_is_rejected_without_unpickling(saved, tmp_path, monkeypatch):
    _, path = saved
    monkeypatch.chdir(tmp_path)
    members = _members(path)
    members["kernel.npy"] = _npy(np.array([_Boom()], dtype=object), allow_pickle=True)
    _write(tmp_path / "evil.npz", members)
    with pytest.raises(LoadError, match="dtype object"):
        load(tmp_path / "evil.npz")
    assert not (tmp_path / "pwned.txt").exists()


def test_plain_pickle_file_is_rejected(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil.npz").write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(LoadError, match="not a valid"):
        load(tmp_path / "evil.npz")
    assert not (tmp_path / "pwned.txt").exists()


def test_corrupt_files(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    cases = {
        "truncated.npz": data[: len(data) // 2],
        "empty.npz": b"",
        "text.npz": b"hello, not a zip",
        "npy.npz": _npy(np.zeros(3)),
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(LoadError, match="not a valid"):
            load(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "missing.npz")


def test_truncated_member_data(saved, tmp_path):
    _, path = saved
    members = _members(path)
    members["kernel.npy"] = members["kernel.npy"][:-4]
    _write(tmp_path / "short.npz", members)
    with pytest.raises(LoadError, match="needs"):
        load(tmp_path / "short.npz")


@pytest.mark.parametrize("change,match", [
    (lambda m: m.update({"extra.npy": _npy(np.zeros(3, np.float32))}), "expected"),
    (lambda m: m.pop("bias.npy"), "expected"),
    (lambda m: m.pop("header.npy"), "no 'header'"),
    (lambda m: m.update({"kernel.npy": _npy(np.zeros((4, 3), np.float32))}), "shape"),
    (lambda m: m.update({"kernel.npy": _npy(np.zeros((5, 3), np.float64))}), "float32"),
    (lambda m: m.update({"kernel.npy": _npy(np.zeros((5, 3), np.int64))}), "dtype int64"),
    (lambda m: m.update({"kernel.npy": _npy(np.zeros((5, 3), np.complex64))}), "complex64"),
    (lambda m: m.update({"notes.txt": b"hi"}), "only .npy"),
    (lambda m: m.update({"header.npy": _npy(np.frombuffer(b"{not json", np.uint8))}), "not JSON"),
    (lambda m: m.update({"header.npy": _npy(np.array([1.0]))}), "uint8"),
])
def test_tampered_members(saved, tmp_path, change, match):
    _, path = saved
    members = _members(path)
    change(members)
    _write(tmp_path / "bad.npz", members)
    with pytest.raises(LoadError, match=match):
        load(tmp_path / "bad.npz")


def _config_changed(**items):
    def change(header):
        header["config"] = {**header["config"], **items}
    return change


@pytest.mark.parametrize("change,match", [
    (_config_changed(activation="os.system"), "Unknown activation"),
    (_config_changed(activation={"class_name": "builtins.eval"}), "string name and activation"),
    (_config_changed(kernel_initializer={"class_name": "subprocess.Popen", "config": {"args": "ls"}}),
     "class_name must be registered"),
    (_config_changed(kernel_constraint={"class_name": "MaxNorm", "config": {"__class__": 1}}),
     "Invalid config for constraint"),
    (_config_changed(bias_regularizer="__import__"), "Unknown regularizer"),
    (_config_changed(surprise=1), "unknown keys"),
    (_config_changed(device="cuda"), "unknown keys"),
    (_config_changed(units=-4), "units"),
    (_config_changed(dtype="object"), "float32 or float64"),
    (lambda h: h.update(class_name="Sequential"), "not one this package saves"),
    (lambda h: h.update(format="other"), "format"),
    (lambda h: h.update(version=2), "version"),
    (lambda h: h.update(features=-1), "positive integer"),
    (lambda h: h.update(features=4), "shape"),
    (lambda h: h.pop("batch_size"), "keys"),
    (lambda h: h.update(extra=1), "keys"),
])
def test_tampered_headers_never_run_code(saved, tmp_path, change, match):
    _, path = saved
    header = _header(path)
    change(header)
    members = _members(path)
    members["header.npy"] = _npy(np.frombuffer(json.dumps(header).encode(), np.uint8))
    _write(tmp_path / "bad.npz", members)
    with pytest.raises(LoadError, match=match):
        load(tmp_path / "bad.npz")
