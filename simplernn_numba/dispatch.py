"""Choose the kernel backend for a call.

``device`` is ``"auto"``, ``"cpu"`` or ``"cuda"``; the environment variable
``SIMPLERNN_NUMBA_DEVICE`` overrides it when set. A Python-callable activation
cannot be compiled, so it always runs on the NumPy reference kernel.
"""

from __future__ import annotations

import os
from types import ModuleType

from . import activations
from .kernels import cpu, reference

DEVICES = ("auto", "cpu", "cuda")
ENV_VAR = "SIMPLERNN_NUMBA_DEVICE"


def check_device(device: str) -> str:
    """Validate a device name."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}; received {device!r}.")
    return device


def requested_device(device: str) -> str:
    """The device asked for, after the ``SIMPLERNN_NUMBA_DEVICE`` override."""
    env = os.environ.get(ENV_VAR)
    if env:
        if env not in DEVICES:
            raise ValueError(f"{ENV_VAR} must be one of {DEVICES}; received {env!r}.")
        return env
    return check_device(device)


def backend(device: str, activation) -> ModuleType:
    """Kernel module for ``device`` and ``activation`` (a callable from :func:`activations.get`)."""
    if activations.name_of(activation) is None:
        return reference
    chosen = requested_device(device)
    if chosen == "cuda":
        raise RuntimeError("device='cuda' is not available: the CUDA kernels are not built yet.")
    return cpu
