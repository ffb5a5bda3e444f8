"""Streaming: T calls of the one-step kernel equal one layer call over T steps."""

import numpy as np
import pytest

from simplernn_numba import SimpleRNN, Stream
from simplernn_numba.interop.streaming import step
from simplernn_numba.kernels import reference
from simplernn_numba.kernels.cpu import step as cpu_step
from simplernn_numba.testing import tolerance


def _layer(rng, units=5, features=3, dtype="float32", **config):
    layer = SimpleRNN(units, dtype=dtype, **config)
    layer.build((None, None, features))
    layer.set_weights([rng.normal(scale=0.4, size=w.shape) for w in layer.weights])
    return layer


#: (activation, use_bias, dtype): tanh in both dtypes (its float32 code is vectorised apart), the
#: others and the absent bias taking turns (each activation and dtype compiles a step kernel
#: variant of its own; test_compiled.py steps every activation).
STREAM_CASES = [("tanh", True, "float32"), ("tanh", False, "float64"), ("relu", False, "float32"),
                ("sigmoid", True, "float64")]


@pytest.mark.parametrize("activation, use_bias, dtype", STREAM_CASES)
def test_steps_equal_one_call(activation, use_bias, dtype):
    rng = np.random.default_rng(0)
    layer = _layer(rng, activation=activation, use_bias=use_bias, dtype=dtype, return_sequences=True)
    x = rng.normal(size=(3, 7, 3)).astype(dtype)
    h0 = rng.normal(size=(3, 5)).astype(dtype)
    expected = layer(x, initial_state=h0)
    stream = Stream(layer, batch_size=3, initial_state=h0)
    state = h0
    rtol, atol = tolerance(dtype)
    for t in range(7):
        out = stream.step(x[:, t])
        state = step(layer, x[:, t], state)
        np.testing.assert_allclose(out, expected[:, t], rtol=rtol, atol=atol)
        np.testing.assert_array_equal(state, out)
    assert stream.state is out
    ref, _ = reference.forward(x, layer.kernel, layer.recurrent_kernel, layer.bias, h0, activation=activation)
    np.testing.assert_allclose(out, ref[:, -1], rtol=rtol, atol=atol)


def test_stream_follows_weight_changes_and_reset():
    rng = np.random.default_rng(1)
    layer = _layer(rng)
    x_t = rng.normal(size=(1, 3)).astype(np.float32)
    stream = Stream(layer)
    first = stream.step(x_t)
    layer.set_weights([w * 2 for w in layer.get_weights()])
    stream.reset()
    np.testing.assert_allclose(stream.step(x_t), layer(x_t[:, None]), rtol=2e-6, atol=2e-7)
    assert not np.allclose(first, stream.state)


def test_no_compilation_after_the_first_step():
    rng = np.random.default_rng(2)
    stream = Stream(_layer(rng))
    x_t = rng.normal(size=(1, 3)).astype(np.float32)
    stream.step(x_t)
    compiled = len(cpu_step.step.signatures)
    for _ in range(5):
        stream.step(x_t)
    stream.step(rng.normal(size=(1, 3)))          # float64 input: cast, same kernel
    stream.step(np.asfortranarray(np.ones((1, 3), np.float32)))
    assert len(cpu_step.step.signatures) == compiled


def test_inputs_are_validated():
    rng = np.random.default_rng(3)
    layer = _layer(rng)
    stream = Stream(layer, batch_size=2)
    with pytest.raises(ValueError, match=r"x_t must have shape \(2, 3\)"):
        stream.step(np.zeros((1, 3), np.float32))
    with pytest.raises(TypeError, match="real numbers"):
        stream.step(np.array([["a", "b", "c"]] * 2))
    with pytest.raises(ValueError, match="state must have shape"):
        step(layer, np.zeros((2, 3)), np.zeros((1, 5)))
    with pytest.raises(ValueError, match="not built"):
        Stream(SimpleRNN(2))
    with pytest.raises(ValueError, match="Python-callable"):
        Stream(_layer(rng, activation=lambda z: z))
    with pytest.raises(ValueError, match="batch_size"):
        Stream(layer, batch_size=0)
