"""Raw device pointers as kernel arguments, and launches that skip numba-cuda's argument typing.

numba-cuda turns every array argument of a launch into seven fields in Python (a few
microseconds each); a kernel compiled with ``types.CPointer`` arguments takes a device
pointer as a plain integer instead. :func:`pointer` gives that integer for a device array,
and :func:`launcher` a callable that launches a compiled kernel with a fixed grid, block and
shared memory straight through its compiled overload (no dispatch on argument types).

Under the CUDA simulator there are no device pointers: :func:`pointer` gives the array
itself, flattened, which the kernel indexes exactly as it indexes a pointer, and
:func:`launcher` the simulator's ordinary launch.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba import cuda


def simulated() -> bool:
    """True under the Numba CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``)."""
    return bool(numba.config.ENABLE_CUDASIM)


_FLOAT32 = np.dtype(np.float32)


@functools.cache
def _absent(dtype: np.dtype):
    return cuda.device_array(0, dtype)


def pointer(array, dtype: np.dtype = _FLOAT32):
    """The argument standing for device array ``array`` (C-contiguous) in a pointer kernel.

    On a GPU, the address of its first element (0 for None); under the simulator, the array
    flattened (a zero-size array of ``dtype`` for None).
    """
    if simulated():
        return _absent(np.dtype(dtype)) if array is None else array.reshape(array.size)
    if array is None:
        return 0
    return array.__cuda_array_interface__["data"][0]


@functools.lru_cache(maxsize=256)
def launcher(kernel, grid: int, block: int, shared: int = 0):
    """A callable launching the compiled ``kernel`` (one explicit signature) as
    ``kernel[grid, block, 0, shared](*args)`` without typing its arguments each time."""
    configured = kernel[grid, block, 0, shared]
    if simulated():
        return configured
    overload = next(iter(kernel.overloads.values()))
    griddim, blockdim, stream = configured.griddim, configured.blockdim, configured.stream

    def launch(*args):
        overload.launch(args, griddim, blockdim, stream, shared)

    return launch
