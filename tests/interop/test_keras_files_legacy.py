"""load_model on ``.h5`` files written by tf_keras 2.21, where TensorFlow is not installed.

The files and tf_keras' predictions come from tests/interop/data/make_tf_keras_files.py (the models
of tests/interop/test_keras_files_tf_keras.py, which builds them afresh where tf_keras is installed).
"""

from pathlib import Path

import numpy as np
import pytest

from simplernn_numba import Bidirectional, SimpleRNN

pytest.importorskip("h5py")
from simplernn_numba.interop.keras import load_model  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("name", ["functional", "merge_modes_and_states"])
def test_predict_equals_tf_keras(name):
    model = load_model(DATA / f"tf_keras_{name}.h5")
    assert model.keras_version == "2.21.0"
    with np.load(DATA / f"tf_keras_{name}.npz") as saved:
        xs = [saved[f"x{i}"] for i in range(sum(k.startswith("x") for k in saved.files))]
        ys = [saved[f"y{i}"] for i in range(sum(k.startswith("y") for k in saved.files))]
    got = model.predict(xs if len(xs) > 1 else xs[0])
    got = got if isinstance(got, list) else [got]
    assert len(got) == len(ys)
    for a, b in zip(got, ys):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_recurrent_layers_are_ours():
    model = load_model(DATA / "tf_keras_functional.h5")
    assert [type(layer) for layer in model.layers[1:3]] == [SimpleRNN, Bidirectional]
    assert model.get_layer("bidirectional").merge_mode == "sum"
