"""Property-based fuzzing of the CUDA kernels against the NumPy reference (simulator or GPU).

A quarter of the active hypothesis profile's examples (at least 10): the
simulator runs every GPU thread in Python. Run with
``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/kernels/cuda/test_cuda_fuzz.py [--hypothesis-profile=long]``.
"""

import numpy as np
import pytest
from cuda_cases import kernels  # noqa: F401  (fixture)
from fuzz_strategies import problems, split
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simplernn_numba.kernels import config, reference
from simplernn_numba.testing import assert_close_normwise

CUDA_SETTINGS = settings(max_examples=max(10, settings.default.max_examples // 4),
                         suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                HealthCheck.too_slow])
@pytest.mark.parametrize("path", ["rows", "step", "registers"])
@CUDA_SETTINGS
@given(problem=problems(max_batch=3, max_steps=5, max_features=4, max_units=6),
       d_output_kind=st.sampled_from(["sequence", "last", "none"]), with_d_state=st.booleans())
def test_cuda_forward_and_backward_match_reference(kernels, path, problem, d_output_kind,  # noqa: F811
                                                   with_d_state):
    """``rows``: the rows kernels, two batch rows per block on three threads (blocks, partial
    blocks and threads looping over pairs); ``step``: one launch per step; ``registers``: the
    register-resident kernels, two rows per block, two weights a thread, chunks of two steps
    (activations without a derivative from the output: the other paths backward)."""
    if path == "rows":
        config.set(CUDA_ROWS=True, CUDA_ROWS_PER_BLOCK=2, CUDA_ROWS_MAX_THREADS=3)
    if path == "registers":
        config.set(CUDA_REGISTERS=True, CUDA_REGISTERS_ROWS=2, CUDA_REGISTERS_WEIGHTS=2,
                   CUDA_REGISTERS_STAGED=1)
    arrays, options = split(problem)
    dtype = arrays[0].dtype
    with np.errstate(all="ignore"):
        out, state = kernels.forward(*arrays, **options)
        ref_out, ref_state = reference.forward(*arrays, **options)
    assert_close_normwise(out, ref_out, dtype)
    assert_close_normwise(state, ref_state, dtype)

    options.pop("return_sequences")
    with np.errstate(all="ignore"):
        outputs, _ = reference.forward(*arrays, **options, return_sequences=True)
    rng = np.random.default_rng(outputs.size)
    d_outputs = {"sequence": rng.standard_normal(outputs.shape).astype(dtype),
                 "last": rng.standard_normal(ref_state.shape).astype(dtype), "none": None}[d_output_kind]
    d_state = rng.standard_normal(ref_state.shape).astype(dtype) if with_d_state else None
    with np.errstate(all="ignore"):
        grads = kernels.backward(*arrays, outputs, d_outputs, d_state, **options)
        ref = reference.backward(*arrays, outputs, d_outputs, d_state, **options)
    assert grads.keys() == ref.keys()
    for key, want in ref.items():
        if want is None:
            assert grads[key] is None, key
        else:
            assert_close_normwise(grads[key], want, dtype)
