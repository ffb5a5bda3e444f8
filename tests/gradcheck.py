"""Central finite differences for the gradient tests."""

from __future__ import annotations

import numpy as np


def numeric_gradients(loss, params: dict, eps: float = 1e-6) -> dict:
    """Central-difference gradient of ``loss(params) -> float`` for every array in ``params``."""
    grads = {}
    for name, value in params.items():
        if value is None:
            grads[name] = None
            continue
        grad = np.zeros_like(value)
        flat, out = value.reshape(-1), grad.reshape(-1)
        for i in range(flat.size):
            keep = flat[i]
            flat[i] = keep + eps
            plus = loss(params)
            flat[i] = keep - eps
            minus = loss(params)
            flat[i] = keep
            out[i] = (plus - minus) / (2 * eps)
        grads[name] = grad
    return grads


def assert_gradients_close(analytic: dict, numeric: dict, rtol: float = 1e-6) -> None:
    """Every array finite and ``max|a - n| <= rtol * max|n|`` (scale floored at 1e-3)."""
    for name, expected in numeric.items():
        got = analytic[name]
        if expected is None:
            assert got is None, name
            continue
        assert got.shape == expected.shape, name
        assert np.isfinite(got).all() and np.isfinite(expected).all(), name
        scale = max(float(np.abs(expected).max()), 1e-3)
        err = float(np.abs(got - expected).max()) / scale
        assert err <= rtol, f"{name}: relative error {err:.2e} > {rtol:.0e}"
