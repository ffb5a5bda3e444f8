"""relu6, leaky_relu and hard_silu (values and derivatives) against Keras 3 and torch.

The compiled kernels are tested against the NumPy reference, which uses these functions; the
other activations are checked against Keras layers (test_keras_parity.py) and torch autograd
(tests/kernels/cpu/test_cpu_backward.py).
"""

import os

import numpy as np
import pytest

from simplernn_numba import activations

NAMES = ["relu6", "leaky_relu", "hard_silu"]
#: Every kink (0 and 6 for relu6, 0 for leaky_relu, -3 and 3 for hard_silu) and both sides of it
KINKS = np.array([-3.0, 0.0, 3.0, 6.0])
SIDES = np.concatenate([KINKS - 1e-9, KINKS + 1e-9])
Z = np.concatenate([np.linspace(-8.05, 8.05, 162), KINKS, SIDES])
#: Where the derivative is defined (a kink's derivative is a convention)
SMOOTH = np.concatenate([np.linspace(-8.05, 8.05, 162), SIDES])


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    pytest.importorskip("torch")
    if keras.backend.backend() != "torch":  # pragma: no cover - depends on the environment
        pytest.skip("needs KERAS_BACKEND=torch")
    return keras


def _torch_functions():
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    return torch, {"relu6": functional.relu6,
                   "leaky_relu": lambda z: functional.leaky_relu(z, negative_slope=0.2),
                   "hard_silu": functional.hardswish}


def _value_and_derivative(torch, function, points):
    z = torch.tensor(points, requires_grad=True)
    value = function(z)
    value.sum().backward()
    return value.detach().numpy(), z.grad.numpy()


@pytest.mark.parametrize("name", NAMES)
def test_matches_keras_3(name):
    keras = _keras()
    import torch

    function = keras.activations.get(name)
    for dtype in (np.float64, np.float32):
        ours = activations.get(name)(Z.astype(dtype))
        assert ours.dtype == dtype
        theirs = function(torch.from_numpy(Z.astype(dtype))).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-6 if dtype == np.float32 else 1e-15, atol=0)
    _, slope = _value_and_derivative(torch, function, SMOOTH)
    np.testing.assert_allclose(activations.DERIVATIVES[name](SMOOTH), slope, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", NAMES)
def test_matches_torch(name):
    torch, functions = _torch_functions()
    value, _ = _value_and_derivative(torch, functions[name], Z)
    np.testing.assert_allclose(activations.get(name)(Z), value, rtol=1e-15, atol=0)
    _, slope = _value_and_derivative(torch, functions[name], SMOOTH)
    np.testing.assert_allclose(activations.DERIVATIVES[name](SMOOTH), slope, rtol=1e-12, atol=1e-15)
