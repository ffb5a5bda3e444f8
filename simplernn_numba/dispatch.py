"""Choose the kernel backend for a call.

``device`` is ``"auto"``, ``"cpu"`` or ``"cuda"``; the environment variable
``SIMPLERNN_NUMBA_DEVICE`` overrides it when set.

- ``"cpu"``: the Numba CPU kernels. GPU inputs are an error (never copied back).
- ``"cuda"``: the Numba CUDA kernels; a RuntimeError when no GPU is usable.
- ``"auto"``: CUDA when the inputs are already on the GPU, or when a GPU is
  usable, one forward call costs at least ``config.CUDA_MIN_FLOPS``
  floating-point operations (``2·B·T·F·U + 2·B·T·U²``) and one step at least
  ``config.CUDA_MIN_STEP_FLOPS`` (``2·B·U·(F + U)``); the CPU otherwise.

A Python-callable activation cannot be compiled: it runs on the NumPy reference
kernel (host arrays only), and forcing ``"cuda"`` with one is an error.
``numba.cuda`` is imported only when a decision needs it.
"""

from __future__ import annotations

import functools
import importlib
import os
from dataclasses import dataclass

from . import _validate, activations
from .kernels import config, cpu, reference
from .kernels.backend import Backend

DEVICES = ("auto", "cpu", "cuda")
ENV_VAR = "SIMPLERNN_NUMBA_DEVICE"


@dataclass(frozen=True)
class CallInfo:
    """Which path a layer call took (``layer.last_call``).

    Attributes
    ----------
    device : {"cpu", "cuda", "reference"}
        The backend :func:`backend` chose: the Numba CPU kernels, the Numba CUDA kernels,
        or the NumPy reference (Python-callable activations).
    plan : object or None
        The backend's plan for the call: the CPU kernels'
        :class:`simplernn_numba.kernels.cpu.plan.Plan` (path, runs of rows, tile shape,
        fused projection), the CUDA kernels' :class:`simplernn_numba.kernels.cuda.plan.Plan`
        (path and launch); None for the reference.
    """

    device: str
    plan: object = None


_CALL_INFO: dict[tuple, CallInfo] = {}


def call_info(backend: Backend) -> CallInfo:
    """The :class:`CallInfo` of the call that just ran on ``backend`` on this thread (one shared
    instance per backend and plan)."""
    key = (backend.name, backend.last_plan())
    info = _CALL_INFO.get(key)
    if info is None:
        info = _CALL_INFO[key] = CallInfo(*key)
    return info


#: Device names other libraries use, with ours (for the error's suggestion).
_OTHER_NAMES = {"gpu": "cuda", "cuda:0": "cuda"}


def check_device(device: str) -> str:
    """Validate a device name."""
    if device not in DEVICES:
        hint = _validate.did_you_mean(_OTHER_NAMES.get(device.lower(), device), DEVICES) if isinstance(
            device, str) else ""
        raise ValueError(f"device must be one of {DEVICES}; received {device!r}.{hint}")
    return device


def requested_device(device: str) -> str:
    """The device asked for, after the ``SIMPLERNN_NUMBA_DEVICE`` override."""
    env = os.environ.get(ENV_VAR)
    if env:
        if env not in DEVICES:
            raise ValueError(f"{ENV_VAR} must be one of {DEVICES}; received {env!r}.")
        return env
    return device if device in DEVICES else check_device(device)


@functools.lru_cache(maxsize=1)
def cuda_available() -> bool:
    """True when numba-cuda is installed and finds a GPU (or runs the CUDA simulator)."""
    try:
        from numba import cuda
    except ImportError:
        return False
    return bool(cuda.is_available())


def cuda_backend() -> Backend:
    """The CUDA backend, or RuntimeError naming why it is unusable."""
    if not cuda_available():
        raise RuntimeError(
            "device='cuda' was requested but no CUDA GPU is usable: install the `cuda` extra "
            "(numba-cuda) on a machine with an NVIDIA GPU and driver, or use device='cpu'/'auto'."
        )
    return importlib.import_module(".kernels.cuda", __package__).BACKEND


def forward_flops(shape: tuple, units: int) -> int:
    """FLOPs of one forward call on inputs of ``shape`` (B, T, F): ``2·B·T·F·U + 2·B·T·U²``."""
    batch, steps, features = shape
    return 2 * batch * steps * units * (features + units)


def _worth_the_gpu(shape: tuple, units: int) -> bool:
    """Whether host inputs of ``shape`` (B, T, F) are worth a trip to the GPU (see the module doc)."""
    batch, steps, features = shape
    step_flops = 2 * batch * units * (features + units)  # forward_flops per step, inline: every call
    return step_flops >= config.CUDA_MIN_STEP_FLOPS and step_flops * steps >= config.CUDA_MIN_FLOPS


def backend(device: str, activation, inputs=None, units: int | None = None) -> Backend:
    """The kernel backend for ``device``, ``activation`` (a callable from :func:`activations.get`)
    and, optionally, the validated ``inputs`` (B, T, F) of a layer with ``units`` units.
    """
    chosen = requested_device(device)
    on_gpu = inputs is not None and _validate.is_device_array(inputs)
    if activations.name_of(activation) is None:
        if chosen == "cuda" or on_gpu:
            raise TypeError(
                f"activation {activation!r} is a Python callable, which the CUDA kernels cannot run; "
                "use a built-in activation name, or host (NumPy) inputs with device='cpu' or 'auto'."
            )
        return reference.BACKEND
    if chosen == "cpu":
        if on_gpu:
            raise ValueError(
                "inputs are on the GPU but device='cpu': copy them to the host yourself "
                "(e.g. .copy_to_host()) or use device='cuda'/'auto'; nothing is copied implicitly."
            )
        return cpu.BACKEND
    if chosen == "cuda" or on_gpu:
        return cuda_backend()
    if inputs is not None and units is not None and _worth_the_gpu(inputs.shape, units) and cuda_available():
        return cuda_backend()
    return cpu.BACKEND
