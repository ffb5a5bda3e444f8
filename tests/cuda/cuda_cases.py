"""Comparison helpers shared by the CUDA tests."""

import numpy as np


def tolerance(dtype):
    """(rtol, atol) for comparing a CUDA kernel against the NumPy reference at ``dtype``."""
    return (1e-10, 1e-12) if np.dtype(dtype) == np.float64 else (5e-5, 5e-6)


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
