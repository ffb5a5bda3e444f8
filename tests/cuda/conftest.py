"""Fixtures for the CUDA tests.

Kernel tests need a CUDA backend: a GPU, or the Numba CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda``, a separate CI step).
Without either they skip; the dispatcher tests that need no GPU always run.
Tests marked ``gpu`` need a real GPU (they skip under the simulator).
"""

import numpy as np
import pytest

from simplernn_numba import dispatch


def real_gpu() -> bool:
    from simplernn_numba.kernels.cuda import simulator_enabled

    return dispatch.cuda_available() and not simulator_enabled()


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a real CUDA GPU (none found, or the simulator is on)")
    if not real_gpu():
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip_gpu)


@pytest.fixture
def kernels():
    """The CUDA kernel module with a tiny launch configuration (grid-stride loops run several times)."""
    if not dispatch.cuda_available():
        pytest.skip("no CUDA GPU; run with NUMBA_ENABLE_CUDASIM=1 to test the kernels in the simulator")
    from simplernn_numba.kernels import cuda as kernels

    kernels.CONFIG.update(threads_per_block=4, max_blocks=2, tile=2, micro=2,
                          tiled_step_min_batch=10**9, persistent=False, persistent_lanes=2)
    yield kernels
    kernels.reset_config()


@pytest.fixture
def rng():
    return np.random.default_rng(2024)
