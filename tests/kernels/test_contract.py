"""The kernel contract (docs/design.md), one body for every backend: the NumPy reference, the CPU
kernels, and the CUDA kernels (under the Numba simulator, or on a GPU; skipped without either).

Forward passes are compared with Keras' recurrence written out step by step below, gradients
with the reference's (the reference's own with finite differences), at float64 tightly and at
float32; masked rows and absent upstream gradients with what Keras' semantics fix.
"""

import importlib

import numpy as np
import pytest
from cuda_cases import host
from cuda_cases import kernels as cuda_kernels  # noqa: F401  (fixture)

from simplernn_numba.kernels import reference
from simplernn_numba.testing import assert_gradients_close, make_problem, numeric_gradients, tolerance

SHAPE = dict(batch=3, steps=4, features=3, units=5)
#: Gradient keys, in the order of ``Problem.arrays()``.
KEYS = ("inputs", "kernel", "recurrent_kernel", "bias", "initial_state")
FLAGS = ("masked", "dropout", "use_bias", "go_backwards", "return_sequences")
#: (dtype, flags, upstream gradients): each flag on and off at each dtype, and each pair of
#: upstream gradients (few cases: each set of optional arrays is a compiled variant per dtype).
CASES = [
    (np.float64, dict(masked=True, dropout=True, use_bias=True), "output+state"),
    (np.float64, dict(masked=True, go_backwards=True), "output"),
    (np.float64, dict(masked=True, dropout=True, use_bias=True, go_backwards=True,
                      return_sequences=True), "state"),
    (np.float64, dict(dropout=True, use_bias=True), "output"),
    (np.float32, dict(masked=True, dropout=True, use_bias=True, go_backwards=True,
                      return_sequences=True), "output+state"),
    (np.float32, {}, "output+state"),
]


def _case_id(case) -> str:
    dtype, flags, upstream = case
    return "-".join([np.dtype(dtype).name, *(name for name in FLAGS if flags.get(name)), upstream])


@pytest.fixture(params=["reference", "cpu", "cuda"])
def backend(request):
    """The kernel module; CUDA's with a tiny launch configuration (see cuda_cases.kernels)."""
    if request.param == "cuda":
        return request.getfixturevalue("cuda_kernels")
    return importlib.import_module(f"simplernn_numba.kernels.{request.param}")


def _problem(case, seed):
    dtype, flags, _ = case
    problem = make_problem(np.random.default_rng(seed), **SHAPE, dtype=dtype,
                           masked=flags.get("masked", False), dropout=flags.get("dropout", False),
                           use_bias=flags.get("use_bias", False))
    options = dict(problem.options(), go_backwards=flags.get("go_backwards", False))
    return problem, options


def _keras_recurrence(problem, go_backwards):
    """All outputs (processing order) and the final state, in float64: a masked step carries the
    state and repeats the last output (zeros before a row's first unmasked step)."""
    x, h = (np.asarray(a, np.float64) for a in (problem.x, problem.initial_state))
    if problem.input_dropout is not None:
        x = x * problem.input_dropout[:, None]
    out, outputs = np.zeros_like(h), []
    for t in range(x.shape[1] - 1, -1, -1) if go_backwards else range(x.shape[1]):
        previous = h if problem.recurrent_dropout is None else h * problem.recurrent_dropout
        z = x[:, t] @ problem.kernel + previous @ problem.recurrent_kernel
        new = np.tanh(z if problem.bias is None else z + problem.bias)
        keep = np.ones((len(h), 1), bool) if problem.mask is None else problem.mask[:, t, None]
        h, out = np.where(keep, new, h), np.where(keep, new, out)
        outputs.append(out)
    return np.stack(outputs, 1), h


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_forward_follows_keras_recurrence(backend, case):
    dtype, flags, _ = case
    problem, options = _problem(case, CASES.index(case))
    return_sequences = flags.get("return_sequences", False)
    outputs, state = backend.forward(*problem.arrays(), **options, return_sequences=return_sequences)
    expected_outputs, expected_state = _keras_recurrence(problem, options["go_backwards"])
    if not return_sequences:
        expected_outputs = expected_outputs[:, -1]
    rtol, atol = tolerance(dtype)
    for ours, expected in ((outputs, expected_outputs), (state, expected_state)):
        assert ours.dtype == np.dtype(dtype) and ours.shape == expected.shape
        np.testing.assert_allclose(host(ours), expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_backward_matches_reference(backend, case):
    """The reference's gradients (for the reference itself: finite differences in float64)."""
    dtype, flags, upstream = case
    problem, options = _problem(case, 100 + CASES.index(case))
    rng = np.random.default_rng(CASES.index(case))
    return_sequences = flags.get("return_sequences", False)
    outputs, state = reference.forward(*problem.arrays(), **options)
    d_output = d_state = None
    if "output" in upstream:
        d_output = rng.normal(size=outputs.shape if return_sequences else state.shape).astype(dtype)
    if "state" in upstream:
        d_state = rng.normal(size=state.shape).astype(dtype)
    grads = backend.backward(*problem.arrays(), outputs, d_output, d_state, **options)
    assert set(grads) == set(KEYS)
    assert (grads["bias"] is None) == (problem.bias is None)
    if backend is reference:
        def loss(params):
            out, last = reference.forward(*(params[key] for key in KEYS), **options,
                                          return_sequences=return_sequences)
            return float((0 if d_output is None else (out * d_output).sum())
                         + (0 if d_state is None else (last * d_state).sum()))

        at64 = {key: None if value is None else value.astype(np.float64)
                for key, value in zip(KEYS, problem.arrays())}
        expected = numeric_gradients(loss, at64)
        assert_gradients_close({key: None if value is None else value.astype(np.float64)
                                for key, value in grads.items()}, expected,
                               rtol=1e-6 if dtype == np.float64 else 1e-4)
    else:
        expected = reference.backward(*problem.arrays(), outputs, d_output, d_state, **options)
    rtol, atol = tolerance(dtype)
    for key in KEYS:
        if expected[key] is None:
            assert grads[key] is None, key
            continue
        assert grads[key].dtype == np.dtype(dtype) and grads[key].shape == expected[key].shape, key
        if backend is not reference:
            np.testing.assert_allclose(host(grads[key]), expected[key], rtol=rtol, atol=10 * atol,
                                       err_msg=key)


def test_fully_masked_rows_keep_the_state_output_zeros_and_pass_the_state_gradient_back(backend):
    problem = make_problem(np.random.default_rng(1), **SHAPE, masked=True, dropout=True)
    problem.mask[2] = False
    outputs, state = (host(a) for a in backend.forward(*problem.arrays(), **problem.options()))
    assert not outputs[0].any() and not outputs[2].any()
    np.testing.assert_array_equal(state[[0, 2]], problem.initial_state[[0, 2]])
    rng = np.random.default_rng(2)
    d_output, d_state = rng.normal(size=outputs.shape), rng.normal(size=state.shape)
    grads = backend.backward(*problem.arrays(), outputs, d_output, d_state, **problem.options())
    np.testing.assert_array_equal(host(grads["initial_state"])[[0, 2]], d_state[[0, 2]])
    assert not host(grads["inputs"])[[0, 2]].any()


def test_a_masked_last_step_routes_the_last_output_gradient_to_the_carried_state(backend):
    """Row 1's last step is masked: its last output is the one before, and so is the gradient's
    way back."""
    problem = make_problem(np.random.default_rng(2), **SHAPE, masked=True)
    problem.mask[:] = True
    problem.mask[1, -1] = False
    outputs, state = reference.forward(*problem.arrays(), mask=problem.mask)
    d_output = np.random.default_rng(3).normal(size=state.shape)
    grads = backend.backward(*problem.arrays(), outputs, d_output, None, mask=problem.mask)
    inputs = host(grads["inputs"])
    assert not inputs[1, -1].any() and inputs[1, -2].all() and inputs[0, -1].all()


def test_no_upstream_gradient_gives_zeros(backend):
    problem = make_problem(np.random.default_rng(4), **SHAPE)
    outputs, _ = reference.forward(*problem.arrays())
    grads = backend.backward(*problem.arrays(), outputs, None, None)
    assert all(not host(grads[key]).any() for key in KEYS)
