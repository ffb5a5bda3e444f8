"""The streaming step kernel (``kernels.cpu.step``): vector path, scalar tail and plain loops."""

import numpy as np
import pytest

from simplernn_numba.kernels import reference
from simplernn_numba.kernels.cpu.activation import choose
from simplernn_numba.kernels.cpu.step import step
from simplernn_numba.testing import tolerance


def _one_step(dtype, units, features=5, batch=3, seed=0):
    rng = np.random.default_rng(seed)
    x_t = rng.normal(size=(batch, features)).astype(dtype)
    state = rng.normal(scale=0.5, size=(batch, units)).astype(dtype)
    kernel = rng.normal(scale=0.4, size=(features, units)).astype(dtype)
    recurrent_kernel = rng.normal(scale=0.3, size=(units, units)).astype(dtype)
    bias = rng.normal(scale=0.1, size=units).astype(dtype)
    return x_t, state, kernel, recurrent_kernel, bias


@pytest.mark.parametrize("dtype, activation, layout", [
    ("float32", "tanh", "C"),     # activated in vector registers
    ("float64", "tanh", "C"),     # vector sums, scalar activation
    ("float32", "relu", "C"),
    ("float64", "elu", "F"),      # weights not C-contiguous: plain loops only
])
def test_step_matches_reference(dtype, activation, layout):
    """Units below, at and above whole vectors (and not a multiple of the four state chains)."""
    rtol, atol = tolerance(dtype)
    for units in (1, 3, 8, 16, 17, 37, 64, 70):
        x_t, state, kernel, recurrent_kernel, bias = _one_step(dtype, units)
        kernel = np.asarray(kernel, order=layout)
        recurrent_kernel = np.asarray(recurrent_kernel, order=layout)
        out = np.full_like(state, np.nan)
        step(x_t, state, kernel, recurrent_kernel, bias, choose(activation), out)
        expected = reference.forward(x_t[:, None], kernel, recurrent_kernel, bias, state,
                                     activation=activation)[0][:, 0]
        np.testing.assert_allclose(out, expected, rtol=rtol, atol=atol, err_msg=f"units={units}")
