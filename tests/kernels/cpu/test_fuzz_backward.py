"""Property-based fuzzing of the CPU backward kernel (BPTT) against the NumPy reference.

Skipped until the CPU backward kernel exists. Default run: the "fast" hypothesis
profile; long run: ``--hypothesis-profile=long`` (see conftest.py).
"""

import numpy as np
import pytest
from fuzz_strategies import problems, split
from hypothesis import given
from hypothesis import strategies as st

from simplernn_numba.kernels import cpu, reference

pytestmark = pytest.mark.skipif(not hasattr(cpu, "backward"), reason="no CPU backward kernel yet")

#: (rtol, atol) per dtype: gradients sum over T steps and the batch, so float32 gets 10x forward's
TOLERANCE = {np.dtype(np.float64): (1e-9, 1e-11), np.dtype(np.float32): (2e-4, 2e-5)}


def assert_close_normwise(ours, ref, dtype):
    rtol, atol = TOLERANCE[np.dtype(dtype)]
    assert ours.dtype == np.dtype(dtype) and ours.shape == ref.shape
    finite = np.abs(ref[np.isfinite(ref)])
    scale = float(finite.max()) if finite.size else 0.0
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=atol + rtol * scale, equal_nan=True)


@given(problems(), st.sampled_from(["sequence", "last", "none"]), st.booleans(), st.data())
def test_cpu_backward_matches_reference(problem, d_output_kind, with_d_state, data):
    arrays, options = split(problem)
    options.pop("return_sequences")
    x, _, _, _, h0 = arrays
    dtype = x.dtype
    with np.errstate(all="ignore"):
        outputs, _ = reference.forward(*arrays, **options, return_sequences=True)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    d_outputs = {"sequence": rng.standard_normal(outputs.shape).astype(dtype),
                 "last": rng.standard_normal(h0.shape).astype(dtype), "none": None}[d_output_kind]
    d_state = rng.standard_normal(h0.shape).astype(dtype) if with_d_state else None
    with np.errstate(all="ignore"):
        ours = cpu.backward(*arrays, outputs, d_outputs, d_state, **options)
        ref = reference.backward(*arrays, outputs, d_outputs, d_state, **options)
    assert set(ours) == set(ref)
    for key, want in ref.items():
        if want is None:
            assert ours[key] is None, key
        else:
            assert_close_normwise(ours[key], want, dtype)
