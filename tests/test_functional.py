"""Functional API: simplernn_numba.forward / backward."""

import numpy as np
import pytest

import simplernn_numba as srn
from simplernn_numba.kernels import reference
from simplernn_numba.testing import assert_gradients_close, make_problem, numeric_gradients


def _problem(dtype=np.float64, **kw):
    return make_problem(np.random.default_rng(0), dtype=dtype, **kw)


def test_forward_matches_reference_and_layer_semantics():
    p = _problem(masked=True, dropout=True)
    for return_sequences in (True, False):
        out, state, _ = srn.forward(*p.arrays(), **p.options(), go_backwards=True, activation="relu",
                                    return_sequences=return_sequences)
        ref_out, ref_state = reference.forward(*p.arrays(), **p.options(), go_backwards=True,
                                               activation="relu", return_sequences=return_sequences)
        np.testing.assert_allclose(out, ref_out, rtol=1e-12)
        np.testing.assert_allclose(state, ref_state, rtol=1e-12)


def test_defaults_zero_state_no_bias():
    p = _problem()
    out, state, cache = srn.forward(p.x, p.kernel, p.recurrent_kernel)
    ref_out, _ = reference.forward(p.x, p.kernel, p.recurrent_kernel, None, np.zeros((3, 6)),
                                   return_sequences=False)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12)
    grads = srn.backward(cache, np.ones_like(out))
    assert grads["bias"] is None and grads["kernel"].shape == p.kernel.shape


def test_backward_matches_finite_differences_last_output_and_state():
    p = _problem(masked=True)
    rng = np.random.default_rng(1)
    d_out, d_state = rng.normal(size=(3, 6)), rng.normal(size=(3, 6))
    out, state, cache = srn.forward(*p.arrays(), mask=p.mask, activation="sigmoid")
    grads = srn.backward(cache, d_out, d_state)
    params = {"inputs": p.x, "kernel": p.kernel, "recurrent_kernel": p.recurrent_kernel, "bias": p.bias,
              "initial_state": p.initial_state}

    def loss(q):
        o, s, _ = srn.forward(q["inputs"], q["kernel"], q["recurrent_kernel"], q["bias"], q["initial_state"],
                              mask=p.mask, activation="sigmoid")
        return float((o * d_out).sum() + (s * d_state).sum())

    assert_gradients_close(grads, numeric_gradients(loss, params))


def test_callable_activation_uses_its_derivative():
    """A callable's ``derivative`` attribute is the one backward uses, even where it is not the
    callable's true derivative (a straight-through estimator for ``sign``, whose finite
    differences are zero): one step, so the expected gradients are closed-form."""
    def sign(z):
        return np.sign(z)

    sign.derivative = lambda z: (np.abs(z) <= 1).astype(z.dtype)
    p = _problem(steps=1)
    d_out = np.random.default_rng(1).normal(size=(3, 1, 6))
    out, _, cache = srn.forward(*p.arrays(), activation=sign, return_sequences=True)
    grads = srn.backward(cache, d_out)
    z = p.x[:, 0] @ p.kernel + p.initial_state @ p.recurrent_kernel + p.bias
    dz = d_out[:, 0] * (np.abs(z) <= 1)
    assert 0 < (np.abs(z) <= 1).mean() < 1
    expected = {"inputs": (dz @ p.kernel.T)[:, None], "initial_state": dz @ p.recurrent_kernel.T,
                "kernel": p.x[:, 0].T @ dz, "recurrent_kernel": p.initial_state.T @ dz,
                "bias": dz.sum(0)}
    assert grads.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_allclose(grads[key], value, rtol=1e-12, atol=1e-15, err_msg=key)


def test_float32_in_float32_out():
    p = _problem(np.float32)
    out, state, cache = srn.forward(*p.arrays(), return_sequences=True)
    grads = srn.backward(cache, np.ones_like(out), np.ones((3, 6)))  # float64 d_state is cast
    assert out.dtype == state.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())


def test_cache_is_reusable():
    p = _problem()
    out, _, cache = srn.forward(*p.arrays())
    first = srn.backward(cache, np.ones_like(out))
    second = srn.backward(cache, np.ones_like(out))
    for key in first:
        np.testing.assert_array_equal(first[key], second[key])


@pytest.mark.parametrize("change, error, message", [
    (dict(kernel=np.ones((4, 6), np.int64)), TypeError, "kernel must have dtype float32 or float64"),
    (dict(recurrent_kernel=np.ones((6, 6), np.float32)), TypeError,
     "recurrent_kernel must have dtype float64"),
    (dict(recurrent_kernel=np.ones((5, 6))), ValueError, r"recurrent_kernel must have shape \(6, 6\)"),
    (dict(bias=np.ones(5)), ValueError, r"bias must have shape \(6,\)"),
    (dict(initial_state=np.ones((2, 6))), ValueError, r"initial_state must have shape \(3, 6\)"),
    (dict(x=np.ones((3, 5, 3))), ValueError,
     r"inputs have 3 features \(shape \(3, 5, 3\)\) but kernel has shape \(4, 6\)"),
    (dict(kernel=np.ones((3, 6))), ValueError, r"but kernel has shape \(3, 6\) = \(features, units\)"),
    (dict(x=np.ones((3, 5))), ValueError, "inputs must be 3-D"),
    (dict(mask=np.ones((3, 4), bool)), ValueError, r"mask must have shape \(3, 5\)"),
    (dict(input_dropout=np.ones((3, 6))), ValueError, r"input_dropout must have shape \(3, 4\)"),
    (dict(recurrent_dropout=np.ones((3, 4))), ValueError, r"recurrent_dropout must have shape \(3, 6\)"),
    (dict(go_backwards=1), TypeError, "go_backwards"),
    (dict(activation="nope"), ValueError, "Unknown activation"),
])
def test_forward_rejects_bad_arguments(change, error, message):
    p = _problem()
    args = dict(x=p.x, kernel=p.kernel, recurrent_kernel=p.recurrent_kernel, bias=p.bias,
                initial_state=p.initial_state)
    args.update(change)
    with pytest.raises(error, match=message):
        srn.forward(args.pop("x"), **args)


def test_backward_rejects_bad_cache_and_gradients():
    p = _problem()
    out, _, cache = srn.forward(*p.arrays(), return_sequences=True)
    with pytest.raises(TypeError, match="needs the Cache returned by simplernn_numba.forward"):
        srn.backward({"outputs": out}, np.ones_like(out))
    with pytest.raises(ValueError, match=r"d_output must have shape \(3, 5, 6\); received shape \(3, 6\)"):
        srn.backward(cache, np.ones((3, 6)))
    with pytest.raises(TypeError, match="d_output must be a float array; received dtype int64"):
        srn.backward(cache, np.ones((3, 5, 6), np.int64))
    with pytest.raises(ValueError, match=r"d_state must have shape \(3, 6\)"):
        srn.backward(cache, None, np.ones((6,)))
    _, _, last_cache = srn.forward(*p.arrays())
    with pytest.raises(ValueError, match=r"d_output must have shape \(3, 6\)"):
        srn.backward(last_cache, np.ones((3, 5, 6)))


def test_empty_batch():
    p = _problem()
    out, state, cache = srn.forward(p.x[:0], p.kernel, p.recurrent_kernel, p.bias)
    grads = srn.backward(cache, np.zeros_like(out), np.zeros_like(state))
    assert grads["inputs"].shape == (0, 5, 4) and grads["initial_state"].shape == (0, 6)
    assert not grads["kernel"].any() and not grads["bias"].any()
