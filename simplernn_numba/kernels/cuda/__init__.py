"""Numba CUDA kernels for SimpleRNN (the optional ``cuda`` extra, ``numba-cuda``).

The contract of :mod:`simplernn_numba.kernels` (``BACKEND``, a
:class:`..backend.KernelBackend`), with the modules of :mod:`..cpu`'s roles: a call picks one
named plan in Python (:mod:`.plan`, ``layer.last_call.plan``) and runs it
(:mod:`.forward_pass`, :mod:`.backward_pass`). Every array argument may be a NumPy array or a
GPU array (a Numba device array, or any object exposing ``__cuda_array_interface__``, used with
zero copies); results are device arrays when ``x`` was on the GPU and NumPy arrays otherwise.

- :mod:`.rows`: U in one block's shared memory, every step of some batch rows per block in one
  launch (the forward kernel projects the inputs itself);
- :mod:`.persistent`: U's slices in shared memory for all steps, one (cooperative) launch;
- :mod:`.per_step`: one launch per step;
- :mod:`.registers`: U's columns in registers, one launch for all steps (off by default:
  ``config.CUDA_REGISTERS``; tested in the simulator, not yet run on a GPU).

Everything that is not sequential in time is one tiled GEMM over all ``B * T`` rows
(:mod:`.gemm`); dropout masks are applied while tiles are loaded, never materialised. The
activations are :mod:`.activation`; the device functions of a step :mod:`.step`; element-wise
kernels :mod:`.sequence`; device copies, placeholders and launches :mod:`.launch`. Kernels
compile lazily, once per dtype (and shape), with explicit signatures. This package is imported
only when the CUDA backend is used.
"""

from ..backend import KernelBackend
from .backward_pass import backward
from .forward_pass import forward
from .last_call import last_plan
from .launch import prepare_weights

#: The CUDA backend (:class:`..backend.Backend`); the forward pass checks device arrays' dtypes
#: itself, so inference and training run the same :func:`forward`.
BACKEND = KernelBackend("cuda", forward, forward, backward, prepare_weights, last_plan)

__all__ = ["BACKEND", "backward", "forward", "last_plan", "prepare_weights"]
