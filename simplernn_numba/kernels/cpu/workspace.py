"""Work arrays of the CPU kernels, reused from call to call (one buffer per thread).

Large fresh arrays are slow to fill: glibc gives freed blocks above its trim
threshold back to the operating system, so every call page-faults its work arrays
in again. On this project's machine, filling two fresh 3.2 MB arrays took 5.7 ms
against 0.17 ms for one (the first is recycled, the second is not), and a training
step at 64,100,128,128 has two such work arrays in its backward pass (and the
forward pass one, the input projection, when it cannot go straight into the
outputs). :func:`arrays` carves them from
one buffer per thread that is kept for the next call; the buffer grows to the
largest size asked for and lasts until :func:`release` (or, after its thread has
ended, until another thread's buffer grows).
Arrays taken from it are never returned to the caller of a kernel.

>>> a, b = arrays(np.float32, (2, 3), (4,))
>>> a.shape, b.shape, a.dtype, a.flags.c_contiguous
((2, 3), (4,), dtype('float32'), True)
"""

from __future__ import annotations

import threading
from math import prod

import numpy as np

from .. import config

#: Byte alignment of every array carved from the buffer (a cache line).
_ALIGN = 64
_BUFFERS: dict[int, np.ndarray] = {}
_LOCK = threading.Lock()


def arrays(dtype, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    """Uninitialised C-contiguous arrays of ``dtype`` and ``shapes``, disjoint, from this
    thread's buffer (fresh arrays below ``config.WORKSPACE_MIN_BYTES``); valid until this thread
    asks again."""
    itemsize = np.dtype(dtype).itemsize
    sizes = [-(-prod(shape) * itemsize // _ALIGN) * _ALIGN for shape in shapes]
    needed = sum(sizes) + _ALIGN
    if needed < config.WORKSPACE_MIN_BYTES:
        return [np.empty(shape, dtype) for shape in shapes]
    key = threading.get_ident()
    buffer = _BUFFERS.get(key)
    if buffer is None or buffer.nbytes < needed:
        buffer = np.empty(needed, np.uint8)
        with _LOCK:
            _BUFFERS[key] = buffer
            alive = {thread.ident for thread in threading.enumerate()}
            for ident in [ident for ident in _BUFFERS if ident not in alive]:
                del _BUFFERS[ident]  # a finished thread's buffer
    start = -buffer.ctypes.data % _ALIGN
    out = []
    for shape, size in zip(shapes, sizes):
        count = prod(shape)
        out.append(buffer[start:start + count * itemsize].view(dtype).reshape(shape))
        start += size
    return out


def aligned_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """A fresh uninitialised C-contiguous array whose data starts on a cache line.

    NumPy's large arrays start 16 bytes past one (glibc's block header), so half of their
    32-byte vector loads straddle two cache lines: weights read that way slowed the
    recurrence 10-15% (1,1000,16,64 and 64,100,128,128 float32, the same weights at offsets
    0 and 16, interleaved).
    """
    nbytes = prod(shape) * np.dtype(dtype).itemsize
    buffer = np.empty(nbytes + _ALIGN, np.uint8)
    start = -buffer.ctypes.data % _ALIGN
    return buffer[start:start + nbytes].view(dtype).reshape(shape)


def release() -> None:
    """Free every thread's buffer (arrays still in use keep theirs alive until they go)."""
    with _LOCK:
        _BUFFERS.clear()


def held_bytes() -> int:
    """Bytes held in buffers for later calls, all threads together."""
    with _LOCK:
        return sum(buffer.nbytes for buffer in _BUFFERS.values())
