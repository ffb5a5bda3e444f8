"""``set_random_seed``: unseeded initializers and dropout masks become reproducible."""

import subprocess
import sys

import numpy as np
import pytest

import simplernn_numba as srn
from simplernn_numba import SimpleRNN, initializers, seeding

X = np.ones((2, 3, 4), np.float32)


def _weights_and_dropout(layer):
    layer.build((None, None, 4))
    return layer.get_weights(), layer(X, training=True)


def test_same_seed_same_weights_and_dropout_masks():
    srn.set_random_seed(5)
    first = _weights_and_dropout(SimpleRNN(3, dropout=0.5, return_sequences=True))
    srn.set_random_seed(5)
    second = _weights_and_dropout(SimpleRNN(3, dropout=0.5, return_sequences=True))
    for a, b in zip(first[0], second[0], strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first[1], second[1])
    srn.set_random_seed(6)
    other = _weights_and_dropout(SimpleRNN(3, dropout=0.5, return_sequences=True))
    assert not np.array_equal(first[0][0], other[0][0])


def test_draws_after_the_seed_differ_from_each_other():
    srn.set_random_seed(1)
    a, b = initializers.GlorotUniform()((3, 3)), initializers.GlorotUniform()((3, 3))
    assert not np.array_equal(a, b)
    seeded = initializers.GlorotUniform(seed=2)
    assert np.array_equal(seeded((3, 3)), seeded((3, 3)))


def test_a_layer_made_before_the_seed_draws_its_dropout_from_it():
    layer = SimpleRNN(3, dropout=0.5, return_sequences=True, kernel_initializer="ones",
                      recurrent_initializer="zeros")
    srn.set_random_seed(9)
    first = layer(X, training=True)
    srn.set_random_seed(9)
    np.testing.assert_array_equal(layer(X, training=True), first)


_SCRIPT = """
import simplernn_numba as srn
srn.set_random_seed(3)
layer = srn.SimpleRNN(3)
layer.build((None, None, 2))
print([w.tolist() for w in layer.get_weights()], srn.seeding.generator().random(3).tolist())
"""


def test_same_values_in_a_fresh_process():
    runs = [subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=True).stdout
            for _ in range(2)]
    assert runs[0] == runs[1] and runs[0].strip()


@pytest.mark.parametrize("seed, error", [(-1, ValueError), (2**32, ValueError), (1.5, TypeError),
                                         (True, TypeError), ("1", TypeError)])
def test_bad_seeds(seed, error):
    with pytest.raises(error, match="seed"):
        srn.set_random_seed(seed)


def test_also_seeds_python_and_numpy_global_generators():
    import random

    srn.set_random_seed(4)
    first = (random.random(), np.random.random())
    srn.set_random_seed(4)
    assert (random.random(), np.random.random()) == first
    assert seeding.epoch() > 0
