"""GPU arrays and the CUDA simulator, recognised without importing ``numba.cuda``.

The one place that says whether a value is a GPU array (:func:`is_device_array`) and whether
the CUDA kernels run in the Numba CUDA simulator (:func:`simulated`): the layer, the validation
and the CUDA backend all ask here.
"""

from __future__ import annotations

import sys

import numba
import numpy as np


def is_device_array(value) -> bool:
    """True for an object exposing ``__cuda_array_interface__`` or a Numba device array.

    Never imports ``numba.cuda``: a Numba device array exists only once it is imported.
    """
    if type(value) is np.ndarray:
        return False
    if hasattr(value, "__cuda_array_interface__"):
        return True
    cuda = sys.modules.get("numba.cuda")
    return cuda is not None and cuda.devicearray.is_cuda_ndarray(value)


def simulated() -> bool:
    """True when the CUDA kernels run in the Numba CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``)."""
    return bool(numba.config.ENABLE_CUDASIM)
