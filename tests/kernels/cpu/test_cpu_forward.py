"""CPU forward kernel against the NumPy reference."""

import itertools

import numpy as np
import pytest

from simplernn_numba.kernels import cpu, reference
from simplernn_numba.testing import ACTIVATIONS, make_problem, tolerance


def _both(problem, **kw):
    ours = cpu.forward(*problem.arrays(), **problem.options(), **kw)
    ref = reference.forward(*problem.arrays(), **problem.options(), **kw)
    return ours, ref


#: Activations of each kind checked at float32 too (the kernels' code differs by dtype for tanh
#: alone; each activation is a compiled variant of its own).
FLOAT32_ACTIVATIONS = ("tanh", "relu", "sigmoid", "leaky_relu", "gelu", "exponential")


@pytest.mark.parametrize("dtype,activation", [(np.float64, a) for a in ACTIVATIONS]
                         + [(np.float32, a) for a in FLOAT32_ACTIVATIONS])
def test_every_activation_matches_reference(rng, dtype, activation):
    problem = make_problem(rng, dtype=dtype, masked=True, dropout=True)
    (out, state), (ref_out, ref_state) = _both(problem, activation=activation)
    rtol, atol = tolerance(dtype)
    if activation == "exponential" and dtype == np.float32:
        # exp turns z's absolute rounding error into a relative one, and z sums terms of the
        # growing outputs: over 200 random problems, float32 kernels with a different summation
        # order than the reference's BLAS exceed rtol 2e-5 on 5% of them, by up to 3.8x
        rtol = 1e-4
    assert out.dtype == state.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, ref_out, rtol=rtol, atol=atol)
    np.testing.assert_allclose(state, ref_state, rtol=rtol, atol=atol)


@pytest.mark.parametrize(
    "dtype,use_bias,masked,dropout,go_backwards,return_sequences",
    list(itertools.product([np.float64, np.float32], [True, False], [True, False], [True, False],
                      [True, False], [True, False])),
)
def test_flag_grid_matches_reference(rng, dtype, use_bias, masked, dropout, go_backwards,
                                     return_sequences):
    problem = make_problem(rng, batch=4, steps=6, dtype=dtype, use_bias=use_bias,
                           masked=masked, dropout=dropout)
    (out, state), (ref_out, ref_state) = _both(
        problem, go_backwards=go_backwards, return_sequences=return_sequences)
    rtol, atol = tolerance(dtype)
    expected_shape = (4, 6, 6) if return_sequences else (4, 6)
    assert out.shape == expected_shape
    np.testing.assert_allclose(out, ref_out, rtol=rtol, atol=atol)
    np.testing.assert_allclose(state, ref_state, rtol=rtol, atol=atol)


def test_last_output_only_does_not_allocate_sequence(rng):
    problem = make_problem(rng, batch=2, steps=50, units=3)
    out, _ = cpu.forward(*problem.arrays(), return_sequences=False)
    assert out.shape == (2, 3)
    assert out.base is None or out.base.size == 2 * 3


def test_float32_matches_float64_reference(rng):
    p64 = make_problem(rng, batch=5, steps=30, features=7, units=9)
    p32 = make_problem(np.random.default_rng(0), dtype=np.float32)
    for name in ("x", "kernel", "recurrent_kernel", "bias", "initial_state"):
        setattr(p32, name, getattr(p64, name).astype(np.float32))
    out32, _ = cpu.forward(*p32.arrays())
    out64, _ = reference.forward(*p64.arrays())
    np.testing.assert_allclose(out32, out64, rtol=1e-5, atol=2e-6)
