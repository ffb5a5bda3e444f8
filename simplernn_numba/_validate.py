"""Argument validation shared by every public entry point.

Compiled kernels have no bounds checks, so every array is checked here (rank,
shape, dtype, contiguity) before any kernel sees it. Errors name what was
expected and what was received.
"""

from __future__ import annotations

import numbers
import sys

import numpy as np

#: Float dtypes the kernels are compiled for.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_dtype(dtype) -> np.dtype:
    """Normalise a layer dtype (``"float32"``, ``np.float64``, ...) or raise TypeError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64; received {dtype!r}.")
    return dt


def as_float_array(value, name: str, dtype: np.dtype) -> np.ndarray:
    """``value`` as a C-contiguous array of ``dtype``.

    Booleans, integers and other real floats are cast (as Keras casts inputs to
    the layer dtype); complex, object, string and other dtypes raise TypeError.
    A copy is made only when the dtype or memory layout requires one.
    """
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers (bool, int or float); received dtype {arr.dtype}."
        )
    return np.ascontiguousarray(arr, dtype=dtype)


def check_shape(arr: np.ndarray, name: str, expected: tuple) -> None:
    """Raise ValueError unless ``arr.shape`` matches ``expected`` (None = any size)."""
    ok = arr.ndim == len(expected) and all(
        e is None or e == s for e, s in zip(expected, arr.shape)
    )
    if not ok:
        shown = tuple("?" if e is None else e for e in expected)
        raise ValueError(f"{name} must have shape {shown}; received shape {arr.shape}.")


def inputs(x, dtype: np.dtype, features: int | None = None) -> np.ndarray:
    """Validate model inputs: (batch, timesteps, features) with timesteps >= 1."""
    arr = device_array(x, "inputs", dtype) if is_device_array(x) else as_float_array(x, "inputs", dtype)
    if arr.ndim != 3:
        raise ValueError(
            "inputs must be 3-D with shape (batch, timesteps, features); "
            f"received shape {arr.shape}."
        )
    if arr.shape[1] == 0:
        raise ValueError(
            f"inputs must have at least one timestep; received shape {arr.shape} (timesteps = 0)."
        )
    if features is not None and arr.shape[2] != features:
        raise ValueError(
            f"inputs must have {features} features (the layer was built for that); "
            f"received shape {arr.shape}."
        )
    return arr


def mask(value, batch: int, steps: int) -> np.ndarray | None:
    """Validate a (batch, timesteps) mask; non-bool values are True where non-zero."""
    if value is None:
        return None
    if is_device_array(value):
        arr = device_array(value, "mask", np.dtype(np.bool_))
        check_shape(arr, "mask", (batch, steps))
        return arr
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"mask must be boolean (or 0/1 numbers); received dtype {arr.dtype}.")
    check_shape(arr, "mask", (batch, steps))
    return np.ascontiguousarray(arr != 0 if arr.dtype != np.bool_ else arr)


def state(value, batch: int, units: int, dtype: np.dtype, name: str = "initial_state") -> np.ndarray:
    """Validate one state given as an array or a list/tuple holding one array: (batch, units)."""
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(
                f"SimpleRNN has 1 state; {name} received a list of {len(value)} values."
            )
        value = value[0]
    arr = device_array(value, name, dtype) if is_device_array(value) else as_float_array(value, name, dtype)
    check_shape(arr, name, (batch, units))
    return arr


def positive_int(value, name: str) -> int:
    """A Python/NumPy integer > 0 (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected a positive integer, "
            f"got {value!r}."
        )
    return int(value)


def rate(value, name: str) -> float:
    """A dropout rate in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected a float in [0, 1), "
            f"got {value!r}."
        )
    return float(value)


def flag(value, name: str) -> bool:
    """A boolean argument (Python or NumPy bool)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"Argument `{name}` must be a bool; received {value!r}.")
    return bool(value)


# ---------------------------------------------------------------------------- GPU (device) arrays
def is_device_array(value) -> bool:
    """True for an object exposing ``__cuda_array_interface__`` or a Numba device array.

    Never imports ``numba.cuda``: a Numba device array exists only once it is imported.
    """
    if hasattr(value, "__cuda_array_interface__"):
        return True
    cuda = sys.modules.get("numba.cuda")
    return cuda is not None and cuda.devicearray.is_cuda_ndarray(value)


def device_array(value, name: str, dtype: np.dtype):
    """Zero-copy Numba view of a GPU array, checked to be C-contiguous with dtype ``dtype``.

    GPU arrays are never cast or copied: a wrong dtype is a TypeError, a
    non-contiguous layout a ValueError.
    """
    from numba import cuda

    arr = value if cuda.devicearray.is_cuda_ndarray(value) else cuda.as_cuda_array(value)
    if np.dtype(arr.dtype) != dtype:
        raise TypeError(
            f"{name} on the GPU must have dtype {dtype} (GPU arrays are never cast or copied); "
            f"received dtype {np.dtype(arr.dtype)}."
        )
    if not arr.is_c_contiguous():
        raise ValueError(f"{name} on the GPU must be C-contiguous; received strides {arr.strides}.")
    return arr


def same_memory(**arrays) -> None:
    """Raise ValueError when some of ``arrays`` are on the GPU and others in host memory.

    None values are ignored; a list/tuple is judged by its first element.
    """
    where = {}
    for key, value in arrays.items():
        if isinstance(value, (list, tuple)) and value:
            value = value[0]
        if value is not None:
            where[key] = is_device_array(value)
    if len(set(where.values())) > 1:
        gpu = ", ".join(k for k, on_gpu in where.items() if on_gpu)
        host = ", ".join(k for k, on_gpu in where.items() if not on_gpu)
        raise ValueError(
            f"{gpu} on the GPU but {host} in host memory: pass them all on the same device "
            "(nothing is copied implicitly)."
        )


# ---------------------------------------------------------------------------------------------------
# Functional API and gradients (forward/backward of simplernn_numba.functional, SimpleRNN.backward).
# ---------------------------------------------------------------------------------------------------

def weight(value, name: str, shape: tuple, dtype: np.dtype | None = None) -> np.ndarray:
    """A weight array of a float dtype (``dtype`` when given) and shape ``shape`` (None = any size).

    Weights are not cast: a dtype other than float32/float64, or other than
    ``dtype``, raises TypeError (the kernel dtype is taken from ``kernel``).
    """
    arr = np.asarray(value)
    expected = FLOAT_DTYPES if dtype is None else (dtype,)
    if arr.dtype not in expected:
        wanted = " or ".join(d.name for d in expected)
        raise TypeError(f"{name} must have dtype {wanted}; received dtype {arr.dtype}.")
    check_shape(arr, name, shape)
    return np.ascontiguousarray(arr)


def multiplier(value, name: str, shape: tuple, dtype: np.dtype) -> np.ndarray | None:
    """An optional dropout multiplier of shape ``shape`` (already scaled by 1 / (1 - rate))."""
    if value is None:
        return None
    arr = as_float_array(value, name, dtype)
    check_shape(arr, name, shape)
    return arr


def gradient(value, name: str, shape: tuple, dtype: np.dtype) -> np.ndarray | None:
    """An optional upstream gradient: a real float array of exactly ``shape``, cast to ``dtype``."""
    if value is None:
        return None
    arr = np.asarray(value)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must be a float array; received dtype {arr.dtype}.")
    check_shape(arr, name, shape)
    return np.ascontiguousarray(arr, dtype=dtype)
