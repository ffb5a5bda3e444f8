import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def tolerance(dtype):
    """(rtol, atol) for comparing a kernel against the reference at ``dtype``."""
    return (1e-10, 1e-12) if np.dtype(dtype) == np.float64 else (2e-5, 2e-6)
