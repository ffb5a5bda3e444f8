"""Bidirectional.backward: finite differences for every merge mode, and torch autograd parity."""

import itertools

import numpy as np
import pytest

import simplernn_numba as srn
from simplernn_numba import Bidirectional, SimpleRNN
from simplernn_numba.interop.torch import from_torch
from simplernn_numba.testing import assert_gradients_close, numeric_gradients

BATCH, STEPS, FEATURES, UNITS = 3, 4, 2, 2
WEIGHTS = ("kernel", "recurrent_kernel", "bias")


def _bidirectional(merge_mode="concat", **config) -> Bidirectional:
    layer = Bidirectional(SimpleRNN(UNITS, dtype="float64", **config), merge_mode=merge_mode)
    layer.build((None, None, FEATURES))
    rng = np.random.default_rng(0)
    layer.set_weights([rng.normal(scale=0.6, size=w.shape) for w in layer.weights])
    return layer


def _mask(rng):
    mask = rng.random((BATCH, STEPS)) > 0.3
    mask[0] = False  # a fully masked row
    mask[1, 0] = mask[2, -1] = True
    mask[1, -1] = False
    return mask


def _as_list(value):
    return list(value) if isinstance(value, list) else [value]


def _check(layer: Bidirectional, masked: bool, seed: int = 1) -> None:
    """Analytic gradients of ``sum(outputs * upstream) + sum(layer.losses)`` against finite differences."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(BATCH, STEPS, FEATURES))
    h0 = [rng.normal(size=(BATCH, UNITS)) for _ in range(2)]
    mask = _mask(rng) if masked else None
    shapes = [np.shape(o) for o in _as_list(layer(x, mask=mask, initial_state=h0))]
    upstream = [rng.normal(size=s) for s in shapes]
    names = layer.forward_layer.weight_names
    n = len(names)

    def total_loss(p):
        layer.set_weights([p["forward." + k] for k in names] + [p["backward." + k] for k in names])
        result = layer(p["inputs"], mask=mask, initial_state=[p["h_forward"], p["h_backward"]])
        return float(sum((o * u).sum() for o, u in zip(_as_list(result), upstream)) + sum(layer.losses))

    weights = layer.get_weights()
    params = {"inputs": x, "h_forward": h0[0], "h_backward": h0[1],
              **{"forward." + k: w for k, w in zip(names, weights[:n])},
              **{"backward." + k: w for k, w in zip(names, weights[n:])}}
    layer(x, mask=mask, initial_state=h0, training=True)
    outputs = 2 if layer.merge_mode is None else 1
    d_output = upstream[:outputs] if layer.merge_mode is None else upstream[0]
    grads = layer.backward(d_output, upstream[outputs:] if layer.return_state else None)
    assert set(grads["forward"]) == set(grads["backward"]) == set(WEIGHTS)
    analytic = {"inputs": grads["inputs"], "h_forward": grads["initial_state"][0],
                "h_backward": grads["initial_state"][1],
                **{f"{d}.{k}": grads[d][k] for d in ("forward", "backward") for k in names}}
    assert_gradients_close(analytic, numeric_gradients(total_loss, params))


@pytest.mark.parametrize("merge_mode, return_sequences, return_state, masked", [
    (mode, *flags)
    for mode, *flags in itertools.product(["concat", "sum", "mul", "ave", None], *[(True, False)] * 3)
])
def test_gradients_match_finite_differences(merge_mode, return_sequences, return_state, masked):
    layer = _bidirectional(merge_mode, return_sequences=return_sequences, return_state=return_state)
    _check(layer, masked, seed=len(str(merge_mode)) + 2 * return_sequences + return_state)


@pytest.mark.parametrize("merge_mode", ["concat", "mul"])
def test_gradients_without_bias(merge_mode):
    layer = _bidirectional(merge_mode, use_bias=False, return_sequences=True, return_state=True)
    _check(layer, masked=True)


def test_gradients_include_regularizers():
    layer = _bidirectional("mul", return_sequences=True, return_state=True,
                           kernel_regularizer=srn.regularizers.L1L2(0.01, 0.02), recurrent_regularizer="l2",
                           bias_regularizer="l1", activity_regularizer=srn.regularizers.L1L2(0.03, 0.05))
    layer(np.ones((BATCH, STEPS, FEATURES)))
    assert len(layer.losses) == 2 * (3 + 2) and all(term > 0 for term in layer.losses)
    _check(layer, masked=True)


def test_unused_outputs_give_zero_gradients():
    layer = _bidirectional(None, return_sequences=True, return_state=True)
    x = np.random.default_rng(5).normal(size=(BATCH, STEPS, FEATURES))
    y, y_rev, _, _ = layer(x, training=True)
    only_forward = layer.backward([np.ones_like(y), None])
    assert not only_forward["backward"]["kernel"].any() and not only_forward["initial_state"][1].any()
    assert only_forward["forward"]["kernel"].any()
    layer(x, training=True)
    nothing = layer.backward()
    assert not nothing["inputs"].any() and not nothing["forward"]["bias"].any()


def test_matches_torch_autograd():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    rnn = torch.nn.RNN(FEATURES, UNITS, batch_first=True, bidirectional=True, dtype=torch.float64)
    layer = from_torch(rnn, return_sequences=True, return_state=True)
    rng = np.random.default_rng(7)
    x, h0 = rng.normal(size=(BATCH, STEPS, FEATURES)), rng.normal(size=(2, BATCH, UNITS))
    d_out, d_h = rng.normal(size=(BATCH, STEPS, 2 * UNITS)), rng.normal(size=(2, BATCH, UNITS))
    tx, th0 = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    out, h_n = rnn(tx, th0)
    ((out * torch.tensor(d_out)).sum() + (h_n * torch.tensor(d_h)).sum()).backward()

    output, h_forward, h_backward = layer(x, initial_state=list(h0), training=True)
    np.testing.assert_allclose(output, out.detach().numpy(), rtol=1e-12, atol=1e-12)
    grads = layer.backward(d_out, list(d_h))
    close = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads["inputs"], tx.grad.numpy(), **close)
    np.testing.assert_allclose(np.stack(grads["initial_state"]), th0.grad.numpy(), **close)
    for direction, suffix in (("forward", ""), ("backward", "_reverse")):
        ours = grads[direction]
        np.testing.assert_allclose(ours["kernel"],
                                   getattr(rnn, "weight_ih_l0" + suffix).grad.numpy().T, **close)
        np.testing.assert_allclose(ours["recurrent_kernel"],
                                   getattr(rnn, "weight_hh_l0" + suffix).grad.numpy().T, **close)
        np.testing.assert_allclose(ours["bias"], getattr(rnn, "bias_ih_l0" + suffix).grad.numpy(), **close)
        np.testing.assert_allclose(ours["bias"], getattr(rnn, "bias_hh_l0" + suffix).grad.numpy(), **close)


def test_backward_needs_a_training_call():
    layer = _bidirectional(return_sequences=True)
    x = np.zeros((BATCH, STEPS, FEATURES))
    with pytest.raises(RuntimeError, match="training=True"):
        layer.backward(np.zeros((BATCH, STEPS, 2 * UNITS)))
    layer(x, training=True)
    layer(x)
    with pytest.raises(RuntimeError, match="training=True"):
        layer.backward(np.zeros((BATCH, STEPS, 2 * UNITS)))
    layer(x, training=True)
    layer.forward_layer(x, training=True)  # the forward layer's cache no longer belongs to the wrapper's call
    with pytest.raises(RuntimeError, match="training=True"):
        layer.backward(np.zeros((BATCH, STEPS, 2 * UNITS)))


def test_backward_rejects_bad_gradients():
    layer = _bidirectional("concat", return_sequences=True)
    layer(np.zeros((BATCH, STEPS, FEATURES)), training=True)
    with pytest.raises(ValueError, match="d_output"):
        layer.backward(np.zeros((BATCH, STEPS, UNITS)))
    with pytest.raises(TypeError, match="float"):
        layer.backward(np.zeros((BATCH, STEPS, 2 * UNITS), int))
    with pytest.raises(ValueError, match="return_state=False"):
        layer.backward(None, [np.zeros((BATCH, UNITS))] * 2)
    with_states = _bidirectional(None, return_state=True)
    with_states(np.zeros((BATCH, STEPS, FEATURES)), training=True)
    with pytest.raises(ValueError, match=r"\[d_forward, d_backward\]"):
        with_states.backward(np.zeros((BATCH, UNITS)))
    with pytest.raises(ValueError, match="d_output\\[1\\]"):
        with_states.backward([np.zeros((BATCH, UNITS)), np.zeros((BATCH, UNITS + 1))])
    with pytest.raises(ValueError, match="2 states"):
        with_states.backward(None, [np.zeros((BATCH, UNITS))])
    with pytest.raises(ValueError, match="d_state"):
        with_states.backward(None, [np.zeros((BATCH, UNITS)), np.zeros((BATCH + 1, UNITS))])


def test_float32_gradients_stay_float32():
    layer = Bidirectional(SimpleRNN(UNITS, return_sequences=True), merge_mode="ave")
    x = np.random.default_rng(6).normal(size=(BATCH, STEPS, FEATURES)).astype(np.float32)
    out = layer(x, training=True)
    grads = layer.backward(np.ones_like(out))
    arrays = [grads["inputs"], *grads["initial_state"],
              *grads["forward"].values(), *grads["backward"].values()]
    assert all(a.dtype == np.float32 for a in arrays)
