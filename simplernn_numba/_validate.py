"""Argument validation shared by every public entry point.

Compiled kernels have no bounds checks, so every array is checked here (rank,
shape, dtype, contiguity) before any kernel sees it. Errors name what was
expected and what was received.
"""

from __future__ import annotations

import difflib
import numbers

import numpy as np

from .kernels.device_arrays import is_device_array

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
    A copy is made only when the dtype or memory layout requires one; the
    rank is kept (a 0-d value stays 0-d, so errors show the received shape).
    """
    if type(value) is np.ndarray and value.dtype == dtype and value.flags.c_contiguous:
        return value  # the common case, without the conversions below
    try:
        arr = np.asarray(value)
    except ValueError as err:  # ragged nested lists
        raise ValueError(f"{name} could not be converted to an array: {err}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers (bool, int or float); received dtype {arr.dtype}."
        )
    # values beyond the float32 range become +-inf, silently, as in a Keras/TensorFlow cast
    with np.errstate(over="ignore"):
        return np.asarray(arr, dtype=dtype, order="C")


def check_shape(arr: np.ndarray, name: str, expected: tuple) -> None:
    """Raise ValueError unless ``arr.shape`` matches ``expected`` (None = any size)."""
    ok = arr.ndim == len(expected) and all(
        e is None or e == s for e, s in zip(expected, arr.shape)
    )
    if not ok:
        shown = tuple("?" if e is None else e for e in expected)
        raise ValueError(f"{name} must have shape {shown}; received shape {arr.shape}.")


def inputs(x, dtype: np.dtype, features: int | None = None, source: str = "") -> np.ndarray:
    """Validate model inputs: (batch, timesteps, features) with timesteps >= 1.

    ``features`` is the feature count the weights fix, and ``source`` says where it
    comes from in the error message (e.g. ``"layer 'rnn' was built for 4"``).
    """
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
            f"inputs have {arr.shape[2]} features (shape {arr.shape}) but "
            f"{source or f'{features} are expected'}."
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
    return writeable_c(arr != 0 if arr.dtype != np.bool_ else arr)


def state(value, batch: int, units: int, dtype: np.dtype, name: str = "initial_state") -> np.ndarray:
    """Validate one state given as an array or a list/tuple holding one array: (batch, units)."""
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(
                f"SimpleRNN has 1 state; {name} received a list of {len(value)} values."
            )
        value = value[0]
    if is_device_array(value):
        arr = device_array(value, name, dtype)
        check_shape(arr, name, (batch, units))
        return arr
    arr = as_float_array(value, name, dtype)
    check_shape(arr, name, (batch, units))
    return writeable_c(arr)


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


def training(value) -> bool:
    """The ``training`` call argument: None, a bool (Python or NumPy) or the integers 0 and 1
    (Keras 2's learning-phase values); anything else is a TypeError."""
    if value is None:
        return False
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral) and value in (0, 1):
        return bool(value)
    raise TypeError(f"training must be True, False, None, 0 or 1; received {value!r}.")


def did_you_mean(name: str, choices) -> str:
    """`` Did you mean 'x'?`` for the choice closest to ``name`` (a case-insensitive match
    first, then :func:`difflib.get_close_matches`), or ``""`` when none is close."""
    choices = [c for c in choices if isinstance(c, str)]
    by_lower = {c.lower(): c for c in sorted(choices, key=lambda c: (c != c.lower(), c))}
    match = by_lower.get(name.lower()) if isinstance(name, str) else None
    if match is None and isinstance(name, str):
        close = difflib.get_close_matches(name.lower(), list(by_lower), n=1)
        match = by_lower[close[0]] if close else None
    return f" Did you mean {match!r}?" if match is not None else ""


# ---------------------------------------------------------------- arrays and arguments
def writeable_c(arr: np.ndarray) -> np.ndarray:
    """``arr`` if it is C-contiguous and writeable, else a copy that is.

    Numba compiles a separate specialisation for read-only arrays; small
    per-call arrays (state, mask) are copied instead, so that a read-only
    argument never triggers a recompilation. Kernels never write to them.
    """
    if arr.flags.c_contiguous and arr.flags.writeable:
        return arr
    return np.array(arr, order="C")


def sequence_of(value, name: str, count: int, what: str) -> list:
    """``value`` as a list of ``count`` items, or a TypeError/ValueError naming both counts."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} expects a list of {count} {what}; received {type(value).__name__}.")
    if len(value) != count:
        raise ValueError(f"{name} expects {count} {what}; received {len(value)}.")
    return list(value)


def input_shape(shape, name: str = "input_shape") -> tuple:
    """A (batch, timesteps, features) shape: batch None or int >= 0, timesteps None or int > 0,
    features int > 0. Returns it as a tuple of Python ints / None."""
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise TypeError(f"{name} must be a tuple (batch, timesteps, features); received {shape!r}.")
    shape = tuple(shape)
    if len(shape) != 3 or shape[2] is None:
        raise ValueError(
            f"{name} must be (batch, timesteps, features) with a known feature size; received {shape}."
        )
    batch, steps, features = shape
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, numbers.Integral)
                              or batch < 0):
        raise ValueError(f"{name}: the batch size must be None or an integer >= 0; received {shape}.")
    if steps is not None:
        steps = positive_int(steps, f"{name}[1] (timesteps)")
    features = positive_int(features, f"{name}[-1]")
    return (None if batch is None else int(batch), steps, features)


def kernel_arguments(x, kernel, recurrent_kernel, bias, initial_state, mask=None,
                     input_dropout=None, recurrent_dropout=None) -> None:
    """Check the kernel contract (see :mod:`simplernn_numba.kernels`) before a compiled kernel runs.

    Cheap (shape, dtype and layout attributes only, no copies): the last line of
    defence against out-of-bounds reads when a kernel is called directly.
    Raises ValueError naming the expected and received shape or dtype.
    """
    try:  # fast path: a few microseconds when everything is right
        batch, steps, features = x.shape
        units = kernel.shape[1]
        dt = x.dtype
        ok = (dt in FLOAT_DTYPES and x.flags.c_contiguous
              and _fits(kernel, (features, units), dt) and _fits(recurrent_kernel, (units, units), dt)
              and _fits(initial_state, (batch, units), dt)
              and (bias is None or _fits(bias, (units,), dt))
              and (mask is None or _fits(mask, (batch, steps), np.bool_))
              and (input_dropout is None or _fits(input_dropout, (batch, features), dt))
              and (recurrent_dropout is None or _fits(recurrent_dropout, (batch, units), dt)))
    except (AttributeError, TypeError, ValueError, IndexError):
        ok = False
    if not ok:
        _explain_kernel_arguments(x, kernel, recurrent_kernel, bias, initial_state, mask,
                                  input_dropout, recurrent_dropout)


def _fits(arr, shape: tuple, dtype) -> bool:
    return (isinstance(arr, np.ndarray) and arr.shape == shape and arr.dtype == dtype
            and arr.flags.c_contiguous)


def _explain_kernel_arguments(x, kernel, recurrent_kernel, bias, initial_state, mask,
                              input_dropout, recurrent_dropout) -> None:
    """Raise the ValueError that names what :func:`kernel_arguments` found wrong."""
    if not isinstance(x, np.ndarray) or x.ndim != 3:
        raise ValueError(f"x must be a 3-D ndarray (batch, timesteps, features); received {x!r:.80}.")
    batch, steps, features = x.shape
    units = kernel.shape[-1] if isinstance(kernel, np.ndarray) and kernel.ndim == 2 else None
    expected = {"kernel": (kernel, (features, units)),
                "recurrent_kernel": (recurrent_kernel, (units, units)),
                "bias": (bias, (units,)), "initial_state": (initial_state, (batch, units)),
                "mask": (mask, (batch, steps)), "input_dropout": (input_dropout, (batch, features)),
                "recurrent_dropout": (recurrent_dropout, (batch, units))}
    for name, (arr, shape) in expected.items():
        if arr is None and name in ("bias", "mask", "input_dropout", "recurrent_dropout"):
            continue
        if not isinstance(arr, np.ndarray) or arr.shape != shape:
            got = arr.shape if isinstance(arr, np.ndarray) else type(arr).__name__
            raise ValueError(f"{name} must be an ndarray of shape {shape}; received {got}.")
        want = np.bool_ if name == "mask" else x.dtype
        if arr.dtype != want or not arr.flags.c_contiguous:
            raise ValueError(f"{name} must be a C-contiguous {np.dtype(want)} array; received "
                             f"{arr.dtype}, C-contiguous={arr.flags.c_contiguous}.")
    if x.dtype not in FLOAT_DTYPES or not x.flags.c_contiguous:
        raise ValueError(f"x must be a C-contiguous float32 or float64 array; received {x.dtype}, "
                         f"C-contiguous={x.flags.c_contiguous}.")
    raise ValueError("the arrays do not satisfy the kernel contract (see simplernn_numba.kernels).")


# ---------------------------------------------------------------------------- GPU (device) arrays
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
