"""Weights to and from ``torch.nn.RNN``: parity with torch, exact round trips, clear refusals."""

import numpy as np
import pytest

from simplernn_numba import Bidirectional, SimpleRNN
from simplernn_numba.interop.torch import from_torch, to_torch

torch = pytest.importorskip("torch")


def _torch_rnn(rng, *, nonlinearity="tanh", bias=True, batch_first=True, bidirectional=False,
               dtype=torch.float32, features=3, units=4):
    rnn = torch.nn.RNN(features, units, nonlinearity=nonlinearity, bias=bias, batch_first=batch_first,
                       bidirectional=bidirectional, dtype=dtype)
    with torch.no_grad():
        for param in rnn.parameters():
            param.copy_(torch.from_numpy(rng.normal(scale=0.5, size=tuple(param.shape))))
    return rnn


def _run_torch(rnn, x, h0=None):
    inputs = torch.from_numpy(x if rnn.batch_first else np.ascontiguousarray(x.transpose(1, 0, 2)))
    with torch.no_grad():
        out, h_n = rnn(inputs, None if h0 is None else torch.from_numpy(h0))
    out = out.numpy()
    return (out if rnn.batch_first else out.transpose(1, 0, 2)), h_n.numpy()


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_from_torch_matches_torch(nonlinearity, bias, batch_first, dtype):
    rng = np.random.default_rng(0)
    rnn = _torch_rnn(rng, nonlinearity=nonlinearity, bias=bias, batch_first=batch_first, dtype=dtype)
    ours = from_torch(rnn, return_sequences=True, return_state=True)
    assert (ours.units, ours.use_bias, ours.dtype) == (4, bias, str(dtype).removeprefix("torch."))
    x = rng.normal(size=(2, 5, 3)).astype(ours.dtype)
    h0 = rng.normal(size=(2, 4)).astype(ours.dtype)
    expected_out, expected_h = _run_torch(rnn, x, h0[None])
    out, h = ours(x, initial_state=h0)
    rtol, atol = (1e-12, 1e-13) if dtype == torch.float64 else (2e-6, 2e-6)
    np.testing.assert_allclose(out, expected_out, rtol=rtol, atol=atol)
    np.testing.assert_allclose(h, expected_h[0], rtol=rtol, atol=atol)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("nonlinearity,bias", [("tanh", True), ("relu", False)])
def test_bidirectional_from_torch_matches_torch(batch_first, nonlinearity, bias):
    rng = np.random.default_rng(1)
    rnn = _torch_rnn(rng, nonlinearity=nonlinearity, bias=bias, batch_first=batch_first, bidirectional=True)
    ours = from_torch(rnn, return_sequences=True, return_state=True)
    assert ours.merge_mode == "concat"
    x = rng.normal(size=(3, 6, 3)).astype(np.float32)
    expected_out, expected_h = _run_torch(rnn, x)
    out, h_fwd, h_bwd = ours(x)
    np.testing.assert_allclose(out, expected_out, rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(h_fwd, expected_h[0], rtol=2e-6, atol=2e-6)
    np.testing.assert_allclose(h_bwd, expected_h[1], rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("batch_first", [True, False])
def test_to_torch_matches_ours_and_round_trip_is_exact(use_bias, batch_first):
    rng = np.random.default_rng(2)
    ours = SimpleRNN(4, activation="relu", use_bias=use_bias, return_sequences=True, dtype="float64")
    ours.build((None, None, 3))
    ours.set_weights([rng.normal(scale=0.5, size=w.shape) for w in ours.weights])
    rnn = to_torch(ours, batch_first=batch_first)
    assert (rnn.nonlinearity, rnn.bias, rnn.batch_first) == ("relu", use_bias, batch_first)
    x = rng.normal(size=(2, 5, 3))
    np.testing.assert_allclose(_run_torch(rnn, x)[0], ours(x), rtol=1e-12, atol=1e-13)
    back = from_torch(rnn)
    for a, b in zip(ours.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert back.dtype == "float64"


def test_bidirectional_to_torch_round_trip_is_exact():
    rng = np.random.default_rng(3)
    ours = Bidirectional(SimpleRNN(2, return_sequences=True))
    ours.build((None, None, 3))
    ours.set_weights([rng.normal(size=w.shape) for w in ours.weights])
    rnn = to_torch(ours)
    assert rnn.bidirectional
    x = rng.normal(size=(2, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(_run_torch(rnn, x)[0], ours(x), rtol=2e-6, atol=2e-6)
    back = from_torch(rnn, return_sequences=True)
    for a, b in zip(ours.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make,error,match", [
    (lambda: torch.nn.RNN(3, 4, num_layers=2), ValueError, "num_layers=2"),
    (lambda: torch.nn.LSTM(3, 4, proj_size=2), TypeError, "torch.nn.RNN"),
    (lambda: torch.nn.GRU(3, 4), TypeError, "torch.nn.RNN"),
    (lambda: torch.nn.RNN(3, 4, dtype=torch.float16), TypeError, "float32 or float64"),
])
def test_from_torch_refuses(make, error, match):
    with pytest.raises(error, match=match):
        from_torch(make())


def test_from_torch_refuses_proj_size_and_other_nonlinearity():
    rnn = torch.nn.RNN(3, 4)
    rnn.proj_size = 2  # nn.RNN refuses proj_size in its constructor; a module may still carry one
    with pytest.raises(ValueError, match="proj_size"):
        from_torch(rnn)
    rnn = torch.nn.RNN(3, 4)
    rnn.nonlinearity = "sigmoid"
    with pytest.raises(ValueError, match="nonlinearity"):
        from_torch(rnn)


@pytest.mark.parametrize("layer,match", [
    (SimpleRNN(2, activation="sigmoid"), "tanh"),
    (SimpleRNN(2, go_backwards=True), "go_backwards"),
    (SimpleRNN(2), "not built"),
])
def test_to_torch_refuses(layer, match):
    if match != "not built":
        layer.build((None, None, 3))
    with pytest.raises(ValueError, match=match):
        to_torch(layer)


def test_bidirectional_to_torch_refuses_mismatched_directions():
    ours = Bidirectional(SimpleRNN(2), backward_layer=SimpleRNN(3, go_backwards=True))
    ours.build((None, None, 3))
    with pytest.raises(ValueError, match="same units"):
        to_torch(ours)
