"""Fixtures and comparison helpers shared by the CUDA tests (tests/kernels/cuda/ and the CUDA
case of tests/kernels/test_contract.py, which import the ``kernels`` fixture from here).

Kernel tests need a CUDA backend: a GPU, or the Numba CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/kernels/cuda tests/kernels/test_contract.py``, a separate CI
step). Without either they skip; the dispatcher tests that need no GPU always run.
Tests marked ``gpu`` need a real GPU (they skip under the simulator).
"""

import numpy as np
import pytest

from simplernn_numba import dispatch
from simplernn_numba.kernels import config
from simplernn_numba.kernels.device_arrays import simulated
from simplernn_numba.testing import tolerance as testing_tolerance


def real_gpu() -> bool:
    """A usable GPU, not the simulator."""
    return dispatch.cuda_available() and not simulated()


@pytest.fixture
def kernels():
    """The CUDA kernel module with a tiny launch configuration (grid-stride loops run several times)
    and the register-resident plans off (their tests turn them on)."""
    if not dispatch.cuda_available():
        pytest.skip("no CUDA GPU; run with NUMBA_ENABLE_CUDASIM=1 to test the kernels in the simulator")
    from simplernn_numba.kernels import cuda as kernels

    config.set(CUDA_THREADS_PER_BLOCK=4, CUDA_MAX_BLOCKS=2, CUDA_TILE=2, CUDA_MICRO=2,
                          CUDA_TILED_STEP_MIN_BATCH=10**9, CUDA_PERSISTENT=False, CUDA_PERSISTENT_LANES=2,
                          CUDA_ROWS=False, CUDA_ROWS_MAX_THREADS=4, CUDA_REGISTERS=False)
    yield kernels
    config.reset()


def tolerance(dtype):
    """(rtol, atol) for comparing a CUDA kernel against the NumPy reference at ``dtype``."""
    return testing_tolerance(dtype, "cuda")


def host(value):
    """A NumPy copy of a result (device arrays copied to the host, None kept)."""
    if value is None or isinstance(value, np.ndarray):
        return value
    return value.copy_to_host()


def assert_close(ours, expected, dtype):
    rtol, atol = tolerance(dtype)
    if isinstance(expected, dict):
        assert ours.keys() == expected.keys()
        for key in expected:
            if expected[key] is None:
                assert ours[key] is None, key
            else:
                assert ours[key].dtype == np.dtype(dtype), key
                np.testing.assert_allclose(host(ours[key]), expected[key], rtol=rtol, atol=atol,
                                           err_msg=key)
        return
    for a, b in zip(ours, expected):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_allclose(host(a), b, rtol=rtol, atol=atol)
