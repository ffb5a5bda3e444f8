"""Property-based fuzzing: the CPU kernel and the layer agree with the NumPy reference.

Default run: the "fast" hypothesis profile (see conftest.py). Long run:
``python -m pytest tests/kernels/cpu/test_fuzz_forward.py --hypothesis-profile=long``.
"""

import numpy as np
from fuzz_strategies import FORWARD_FUZZ_ACTIVATIONS, problems, split
from hypothesis import given
from hypothesis import strategies as st

from simplernn_numba import SimpleRNN
from simplernn_numba.kernels import cpu, reference
from simplernn_numba.testing import tolerance


def assert_same(ours, ref, dtype):
    """Elementwise within tolerance(dtype), with the absolute part scaled by the largest |value|.

    Unbounded activations (relu) with unit-scale weights grow the state, and an element that
    cancels to a small value keeps the rounding error of its large terms: a normwise bound is the
    meaningful one there.
    """
    rtol, atol = tolerance(dtype)
    assert ours.dtype == np.dtype(dtype) and ours.shape == ref.shape
    finite = np.abs(ref[np.isfinite(ref)])
    scale = float(finite.max()) if finite.size else 0.0
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=atol + rtol * scale, equal_nan=True)


@given(problems(activations=FORWARD_FUZZ_ACTIVATIONS))
def test_cpu_forward_matches_reference(problem):
    arrays, options = split(problem)
    (out, state), (ref_out, ref_state) = (cpu.forward(*arrays, **options),
                                          reference.forward(*arrays, **options))
    assert_same(out, ref_out, problem["x"].dtype)
    assert_same(state, ref_state, problem["x"].dtype)


@given(problems(activations=FORWARD_FUZZ_ACTIVATIONS), st.booleans(), st.booleans(),
       st.sampled_from(["array", "list", "none"]))
def test_layer_matches_reference(problem, return_state, float64_inputs, state_form):
    """Through the public layer: casts, mask as 0/1 ints, initial_state forms, return flags."""
    arrays, options = split(problem)
    x, kernel, recurrent_kernel, bias, h0 = arrays
    dtype = x.dtype
    layer = SimpleRNN(kernel.shape[1], activation=options["activation"], use_bias=bias is not None,
                      go_backwards=options["go_backwards"],
                      return_sequences=options["return_sequences"], return_state=return_state,
                      dtype=dtype.name)
    layer.build(x.shape)
    layer.set_weights([w for w in (kernel, recurrent_kernel, bias) if w is not None])
    mask = options["mask"]
    initial_state = {"array": h0, "list": [h0], "none": None}[state_form]
    result = layer(x.astype(np.float64) if float64_inputs else x,
                   mask=None if mask is None else mask.astype(np.int8), initial_state=initial_state)
    ref_out, ref_state = reference.forward(
        x, kernel, recurrent_kernel, bias, h0 if state_form != "none" else np.zeros_like(h0),
        mask=mask, go_backwards=options["go_backwards"], activation=options["activation"],
        return_sequences=options["return_sequences"])
    if return_state:
        assert isinstance(result, list) and len(result) == 2
        assert_same(result[0], ref_out, dtype)
        assert_same(result[1], ref_state, dtype)
    else:
        assert_same(result, ref_out, dtype)


@given(problems(max_batch=4, max_steps=6, activations=FORWARD_FUZZ_ACTIVATIONS), st.data())
def test_nan_and_inf_propagate_as_in_the_reference(problem, data):
    """NaN/Inf planted in inputs, state or weights end up in the same places as in the reference."""
    arrays, options = split(problem)
    arrays = [None if a is None else a.copy() for a in arrays]
    candidates = [i for i, a in enumerate(arrays) if a is not None and a.size]
    for _ in range(data.draw(st.integers(1, 3))):
        if not candidates:
            break
        target = arrays[data.draw(st.sampled_from(candidates))]
        flat = target.reshape(-1)
        flat[data.draw(st.integers(0, flat.size - 1))] = data.draw(
            st.sampled_from([np.nan, np.inf, -np.inf]))
    with np.errstate(all="ignore"):
        (out, state), (ref_out, ref_state) = (cpu.forward(*arrays, **options),
                                              reference.forward(*arrays, **options))
    dtype = problem["x"].dtype
    for ours, ref in ((out, ref_out), (state, ref_state)):
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
        np.testing.assert_array_equal(np.isposinf(ours), np.isposinf(ref))
        np.testing.assert_array_equal(np.isneginf(ours), np.isneginf(ref))
        finite = np.isfinite(ref)
        assert_same(np.where(finite, ours, 0), np.where(finite, ref, 0), dtype)
