"""Property-based fuzzing of the CPU backward kernel (BPTT) against the NumPy reference.

Default run: the "fast" hypothesis profile; long run: ``--hypothesis-profile=long`` (see conftest.py).
"""

import numpy as np
from fuzz_strategies import problems, split
from hypothesis import given
from hypothesis import strategies as st

from simplernn_numba.kernels import cpu, reference
from simplernn_numba.testing import assert_close_normwise


@given(problems(), st.sampled_from(["sequence", "last", "none"]), st.booleans(), st.data())
def test_cpu_backward_matches_reference(problem, d_output_kind, with_d_state, data):
    arrays, options = split(problem)
    options.pop("return_sequences")
    x, kernel, recurrent_kernel, bias, h0 = arrays
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
