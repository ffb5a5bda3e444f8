"""Host side of a CUDA call: device copies, placeholders, launch sizes and launches.

Two ways to pass arrays to a kernel: as Numba device arrays (the rows, persistent and per-step
kernels; an absent optional array is a zero-size placeholder with a flag, see
:func:`placeholders`), or as raw device pointers (the register-resident kernels):
numba-cuda turns every array argument of a launch into seven fields in Python (a few
microseconds each); a kernel compiled with ``types.CPointer`` arguments takes a device pointer
as a plain integer instead (:func:`pointer`), launched straight through its compiled overload
(:func:`launcher`). Under the CUDA simulator there are no device pointers: :func:`pointer`
gives the array itself, flattened, which the kernel indexes exactly as it indexes a pointer,
and :func:`launcher` the simulator's ordinary launch.
"""

from __future__ import annotations

import functools
import weakref

import numpy as np
from numba import cuda

from .. import config
from ..device_arrays import simulated


# ---------------------------------------------------------------------------- arrays
def to_device(value):
    """A device array for ``value``: GPU arrays are wrapped with zero copies, host arrays copied."""
    if value is None:
        return None
    if cuda.devicearray.is_cuda_ndarray(value):
        return value
    if hasattr(value, "__cuda_array_interface__"):
        return cuda.as_cuda_array(value)
    return cuda.to_device(np.ascontiguousarray(value))


def copy(array):
    """A new device array holding a copy of device array ``array``."""
    out = cuda.device_array(array.shape, array.dtype)
    out.copy_to_device(array)
    return out


def host_or_device(arrays, on_device: bool) -> tuple:
    """``arrays`` as they are (``on_device``) or copied to the host; None stays None."""
    return tuple(arrays) if on_device else tuple(None if a is None else a.copy_to_host() for a in arrays)


def check_dtypes(dtype: np.dtype, **arrays) -> None:
    """The kernels are compiled per dtype and read raw memory: every array must match (mask: bool)."""
    for name, value in arrays.items():
        if value is None:
            continue
        expected = np.dtype(np.bool_) if name == "mask" else dtype
        interface = getattr(value, "__cuda_array_interface__", None)
        received = np.dtype(interface["typestr"] if interface else value.dtype)
        if received != expected:
            raise TypeError(f"{name} must have dtype {expected} for the CUDA kernels; received {received}.")


class Placeholders:
    """Zero-size device arrays passed where an optional array is absent (a flag says so)."""

    def __init__(self, dtype: np.dtype):
        self.vector = cuda.device_array(0, dtype)
        self.matrix = cuda.device_array((0, 0), dtype)
        self.mask = cuda.device_array((0, 0), np.bool_)
        self.first = cuda.device_array(0, np.int32)


@functools.cache
def placeholders(dtype: np.dtype) -> Placeholders:
    """The :class:`Placeholders` of ``dtype`` (allocated once)."""
    return Placeholders(dtype)


#: Workspaces kept between calls, by (purpose, dtype): every launch goes to the default stream,
#: so a call never overwrites one while an earlier call's kernel still reads it.
_WORKSPACE: dict = {}


def workspace(purpose: str, size: int, dtype: np.dtype):
    """A flat device array of at least ``size`` elements of ``dtype``, kept for ``purpose``."""
    key = (purpose, np.dtype(dtype))
    kept = _WORKSPACE.get(key)
    if kept is None or kept.size < size:
        kept = _WORKSPACE[key] = cuda.device_array(size, dtype)
    return kept


# ---------------------------------------------------------------------------- launch sizes
def blocks(n: int) -> tuple[int, int]:
    """(blocks, threads) for a 1-D grid-stride loop over ``n`` items."""
    threads = config.CUDA_THREADS_PER_BLOCK
    return max(1, min(-(-n // threads), config.CUDA_MAX_BLOCKS)), threads


def grid_stride(kernel, n: int, *args) -> None:
    """Launch the grid-stride ``kernel`` over ``n`` items."""
    kernel[blocks(n)](*args)


def tile_grid(rows: int, cols: int, span: int) -> tuple[int, int]:
    """(x, y) blocks covering a rows x cols output in span x span tiles, capped by ``CUDA_MAX_BLOCKS``."""
    cap = config.CUDA_MAX_BLOCKS
    return max(1, min(-(-cols // span), cap)), max(1, min(-(-rows // span), cap))


def multiprocessors() -> int:
    """The current GPU's multiprocessor count (1 under the simulator)."""
    return 1 if simulated() else cuda.get_current_device().MULTIPROCESSOR_COUNT


#: Dynamic shared memory each compiled kernel has been allowed (bytes), by kernel.
_SHARED_ALLOWED: dict = {}


def allow_shared(kernel, nbytes: int) -> bool:
    """Whether ``kernel`` may launch with ``nbytes`` of dynamic shared memory.

    Up to :data:`config.CUDA_SHARED_MEMORY_LIMIT` always; beyond it (on a real GPU) up to the device's
    opt-in maximum (227 KiB on an H100), after raising the kernel's
    ``CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES`` to that maximum once.
    """
    if nbytes <= config.CUDA_SHARED_MEMORY_LIMIT:
        return True
    if simulated():
        return False
    allowed = _SHARED_ALLOWED.get(kernel)
    if allowed is None:
        allowed = config.CUDA_SHARED_MEMORY_LIMIT
        try:
            from numba.cuda.cudadrv.driver import binding, driver

            most = int(cuda.get_current_device().MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
            function = next(iter(kernel.overloads.values()))._codelibrary.get_cufunc()
            attribute = binding.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
            try:  # numba-cuda loads kernels through the library API (CUkernel handles)
                driver.cuKernelSetAttribute(attribute, most, function.handle, function.device.id)
            except Exception:
                driver.cuFuncSetAttribute(function.handle, attribute, most)
            allowed = most
        except Exception:  # an older driver or binding: stay within the default limit
            pass
        _SHARED_ALLOWED[kernel] = allowed
    return nbytes <= allowed


# ---------------------------------------------------------------------------- pointer launches
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


#: Device copies of a layer's weights: owner -> (weights version, device arrays).
_DEVICE_WEIGHTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def prepare_weights(owner, version: int, arrays: tuple) -> tuple:
    """Device copies of ``arrays``, cached per ``owner`` (a layer) and refreshed when ``version``
    (bumped on every weight change) differs."""
    cached = _DEVICE_WEIGHTS.get(owner)
    if cached is None or cached[0] != version:
        cached = (version, tuple(to_device(a) for a in arrays))
        _DEVICE_WEIGHTS[owner] = cached
    return cached[1]
