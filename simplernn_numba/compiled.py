"""SimpleRNN steps and sequences callable from your own ``@njit`` code (and from Python).

:func:`step` advances a batch one timestep, :func:`forward` runs a whole sequence; both write
into an array you pass. Inside a function compiled with ``@njit`` or ``@njit(parallel=True)``
(``prange`` bodies included) they compile into your code, so a simulation, filter or control
loop advances the RNN without leaving compiled code. The activation is a string known when
your function compiles, so only that activation's code is compiled: a literal or a module-level
constant. An argument of your ``@njit`` function works too (it then compiles once per
activation), but Numba resolves such a literal argument anew on every call of your function
(about 18 ms on a 2-core machine): pass one only to a function that runs a long loop. The
weights are the layer's arrays (``layer.kernel``, ``layer.recurrent_kernel``, ``layer.bias``, or
zeros for a layer without bias); a run of :func:`step` equals the layer's call to float rounding.

Any layout Numba passes works (slices such as ``x[:, t]``, transposed weights); all arrays have
one float dtype, float32 or float64. ``x_t`` is read in place; a state, ``out`` or weights that
are not C-contiguous (``outputs[:, t]`` with several rows, transposed weights) are copied for
the call, as is the result when ``out`` overlaps an input. Each call uses only its own
arguments and such temporaries, so calls on different rows from different threads are safe.
From compiled code a shape mismatch raises ValueError before any element is read; a wrong rank,
dtype or activation name is a compile-time typing error. From Python the arguments
are validated as everywhere in the package.

>>> import numpy as np
>>> from numba import njit
>>> from simplernn_numba import SimpleRNN, compiled
>>> layer = SimpleRNN(4)
>>> x = np.random.default_rng(0).random((2, 6, 3))
>>> y = layer(x.astype(np.float32))                        # builds the layer
>>> @njit
... def run(x, kernel, recurrent_kernel, bias):
...     h = np.zeros((x.shape[0], kernel.shape[1]), x.dtype)
...     for t in range(x.shape[1]):
...         compiled.step(x[:, t], h, kernel, recurrent_kernel, bias, h, "tanh")
...     return h
>>> h = run(x.astype(np.float32), layer.kernel, layer.recurrent_kernel, layer.bias)
>>> bool(np.allclose(h, y, atol=1e-6))
True
"""

from __future__ import annotations

import numpy as np
from numba import errors, literally, njit, types
from numba.extending import overload

from . import _validate, activations
from .kernels.cpu import options
from .kernels.cpu.activation import choose
from .kernels.cpu.step import step as _step_kernel
from .kernels.cpu.views import as_any, as_c, borrowed, is_c, keep, span

__all__ = ["forward", "step"]

_FLAGS = options.NOGIL_EXACT
_INLINE = options.INLINE_EXACT


# ---------------------------------------------------------------- the public functions
def step(x_t: np.ndarray, state: np.ndarray, kernel: np.ndarray, recurrent_kernel: np.ndarray,
         bias: np.ndarray, out: np.ndarray, activation: str = "tanh") -> None:
    """Write ``activation(x_t @ kernel + state @ recurrent_kernel + bias)`` into ``out``.

    Parameters
    ----------
    x_t : ndarray (B, F) or (F,)
    state : ndarray (B, U) or (U,)
        The previous state.
    kernel : ndarray (F, U)
    recurrent_kernel : ndarray (U, U)
    bias : ndarray (U,)
        Zeros for a layer without bias.
    out : ndarray (B, U) or (U,), written
        May be ``state`` itself (or overlap any input): the step is then computed into a
        temporary and copied, which costs one allocation; distinct arrays avoid it.
    activation : str
        A built-in activation name (:data:`simplernn_numba.activations.NAMES`); in compiled
        code, a string known when the caller compiles.

    All arrays have one dtype (float32 or float64); ``x_t``, ``state`` and ``out`` are all 2-D
    or all 1-D (one row).

    >>> out = np.empty((1, 2))
    >>> step(np.ones((1, 1)), np.zeros((1, 2)), np.ones((1, 2)), np.eye(2), np.zeros(2), out,
    ...      "linear")
    >>> out.tolist()
    [[1.0, 1.0]]
    """
    act = choose(_name(activation))
    dtype = _dtype_of(out, "out")
    x_t, state = _array(x_t, "x_t", dtype), _array(state, "state", dtype)
    kernel, recurrent_kernel, bias = _weights(kernel, recurrent_kernel, bias, dtype)
    features, units = kernel.shape
    batch = () if x_t.ndim == 1 else (x_t.shape[:1])
    _validate.check_shape(x_t, "x_t", (*batch, features))
    _validate.check_shape(state, "state", (*batch, units))
    _validate.check_shape(out, "out", (*batch, units))
    if x_t.ndim == 1:
        x_t, state, out = x_t[np.newaxis], state[np.newaxis], out[np.newaxis]
    _run_step(x_t, state, kernel, recurrent_kernel, bias, act, out)


def forward(x: np.ndarray, initial_state: np.ndarray, kernel: np.ndarray, recurrent_kernel: np.ndarray,
            bias: np.ndarray, outputs: np.ndarray, activation: str = "tanh") -> None:
    """Run a sequence, writing the state after every step into ``outputs``.

    Parameters
    ----------
    x : ndarray (B, T, F) or (T, F)
    initial_state : ndarray (B, U) or (U,)
        Not modified (copied first when it overlaps ``outputs``).
    kernel, recurrent_kernel, bias : ndarray (F, U), (U, U), (U,)
    outputs : ndarray (B, T, U) or (T, U), written
        ``outputs[:, t]`` is the state after step ``t`` (the layer's ``return_sequences=True``
        output; the final state is ``outputs[:, -1]``). Must not overlap ``x`` or the weights
        (ValueError).
    activation : str
        As for :func:`step`.

    >>> outputs = np.empty((3, 1))
    >>> forward(np.ones((3, 1)), np.zeros(1), np.ones((1, 1)), np.ones((1, 1)), np.zeros(1),
    ...         outputs, "linear")
    >>> outputs.ravel().tolist()
    [1.0, 2.0, 3.0]
    """
    act = choose(_name(activation))
    dtype = _dtype_of(outputs, "outputs")
    x = _array(x, "x", dtype)
    initial_state = _array(initial_state, "initial_state", dtype)
    outputs = _array(outputs, "outputs", dtype)
    kernel, recurrent_kernel, bias = _weights(kernel, recurrent_kernel, bias, dtype)
    features, units = kernel.shape
    if x.ndim not in (2, 3):
        raise ValueError(f"x must have shape (batch, timesteps, {features}) or (timesteps, {features}); "
                         f"received shape {x.shape}.")
    lead = x.shape[:-1]
    _validate.check_shape(x, "x", (*lead, features))
    _validate.check_shape(initial_state, "initial_state", (*lead[:-1], units))
    _validate.check_shape(outputs, "outputs", (*lead, units))
    if x.ndim == 2:
        x, initial_state, outputs = x[np.newaxis], initial_state[np.newaxis], outputs[np.newaxis]
    _forward_rows(x, initial_state, kernel, recurrent_kernel, bias, outputs, act)


# ---------------------------------------------------------------- Python-side validation
def _name(activation) -> str:
    if not isinstance(activation, str):
        raise TypeError(f"activation must be a built-in activation name (str); received {activation!r}.")
    return activations.canonical_name(activation)


def _dtype_of(out, name: str) -> np.dtype:
    """The call's dtype: that of the written array, which must be a writeable float ndarray."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array (it is written); received {type(out).__name__}.")
    if out.dtype not in _validate.FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64; received dtype {out.dtype}.")
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writeable; received a read-only array.")
    return out.dtype


def _array(value, name: str, dtype: np.dtype) -> np.ndarray:
    """``value`` as an array of ``dtype`` (unchanged, whatever its layout, when it is one)."""
    if isinstance(value, np.ndarray) and value.dtype == dtype:
        return value
    return _validate.as_float_array(value, name, dtype)


def _weights(kernel, recurrent_kernel, bias, dtype: np.dtype) -> tuple:
    kernel = _array(kernel, "kernel", dtype)
    if kernel.ndim != 2:
        raise ValueError(f"kernel must have shape (features, units); received shape {kernel.shape}.")
    units = kernel.shape[1]
    recurrent_kernel = _array(recurrent_kernel, "recurrent_kernel", dtype)
    _validate.check_shape(recurrent_kernel, "recurrent_kernel", (units, units))
    bias = _array(bias, "bias", dtype)
    _validate.check_shape(bias, "bias", (units,))
    return kernel, recurrent_kernel, bias


# ---------------------------------------------------------------- compiled checks and entries
@njit(**_FLAGS)
def _check_weights(kernel, recurrent_kernel, bias, features):
    """Raise ValueError unless the weights' shapes (tuples) agree with ``features``."""
    units = kernel[1]
    if kernel[0] != features:
        raise ValueError("kernel.shape[0] must equal the number of features of x")
    if recurrent_kernel[0] != units or recurrent_kernel[1] != units:
        raise ValueError("recurrent_kernel must have shape (units, units), units = kernel.shape[1]")
    if bias[0] != units:
        raise ValueError("bias must have shape (units,), units = kernel.shape[1]")


@njit(**_FLAGS)
def _check_step(x_t, state, kernel, recurrent_kernel, bias, out):
    """Raise ValueError unless the 2-D step arguments' shapes (tuples) agree."""
    _check_weights(kernel, recurrent_kernel, bias, x_t[1])
    if state[0] != x_t[0] or state[1] != kernel[1]:
        raise ValueError("state must have shape (batch, units): x_t.shape[0], kernel.shape[1]")
    if out[0] != x_t[0] or out[1] != kernel[1]:
        raise ValueError("out must have shape (batch, units): x_t.shape[0], kernel.shape[1]")


@njit(**_FLAGS)
def _meets(a, b):
    """Whether the byte spans ``a`` and ``b`` (:func:`.kernels.cpu.views.span`) intersect."""
    return a[0] < b[1] and b[0] < a[1]


@njit(**_FLAGS)
def _meets_any(out, x_t, state, kernel, recurrent_kernel, bias):
    """Whether the span ``out`` meets any of the others."""
    return (_meets(out, x_t) or _meets(out, state) or _meets(out, kernel)
            or _meets(out, recurrent_kernel) or _meets(out, bias))


@njit(**_INLINE)
def _step_contiguous(x_t, state, kernel, recurrent_kernel, bias, act, out):
    """The step kernel on C-typed views when the arrays are C-contiguous (a slice such as
    ``outputs[:, t]`` of one row is), else :func:`_step_copied`: one compiled variant of the
    kernel per dtype and activation (``x_t``, read by its strides, typed with any layout)."""
    if is_c(state) and is_c(kernel) and is_c(recurrent_kernel) and is_c(bias) and is_c(out):
        _step_kernel(as_any(x_t), as_c(state), as_c(kernel), as_c(recurrent_kernel), as_c(bias), act,
                     as_c(out))
    else:
        _step_copied(x_t, state, kernel, recurrent_kernel, bias, act, out)


@njit(**_INLINE)
def _step_copied(x_t, state, kernel, recurrent_kernel, bias, act, out):
    """The step on C-contiguous copies of the arrays that are not (the others as they are), into
    a temporary then copied into ``out``: for an ``out`` that overlaps an input or is strided.
    The copies are made by functions compiled once per dtype (:func:`_copies`, :func:`_copy`),
    whatever the activation and the layouts."""
    state, kernel, recurrent_kernel, bias, result = _copies(
        as_any(state), as_any(kernel), as_any(recurrent_kernel), as_any(bias), as_any(out))
    _step_kernel(as_any(x_t), state, kernel, recurrent_kernel, bias, act, result)
    _copy(result, as_any(out))


@njit(**_FLAGS)
def _copies(state, kernel, recurrent_kernel, bias, out):
    """C-contiguous ``state``, ``kernel``, ``recurrent_kernel`` and ``bias`` (copies of those
    that are not) and a new array shaped as ``out``."""
    return (np.ascontiguousarray(state), np.ascontiguousarray(kernel),
            np.ascontiguousarray(recurrent_kernel), np.ascontiguousarray(bias),
            np.empty((out.shape[0], out.shape[1]), out.dtype))


@njit(**_FLAGS)
def _copy(result, out):
    """``out[:] = result`` (2-D; a loop compiles faster than the slice assignment)."""
    for b in range(out.shape[0]):
        for u in range(out.shape[1]):
            out[b, u] = result[b, u]


@njit(**_INLINE)
def _step_borrowed(x_t, state, kernel, recurrent_kernel, bias, act, out):
    """The step on borrowed 2-D arrays (:func:`.kernels.cpu.views.borrowed`), their shapes
    checked; into a temporary when ``out`` overlaps an input."""
    _check_step(x_t.shape, state.shape, kernel.shape, recurrent_kernel.shape, bias.shape, out.shape)
    if _meets_any(span(out), span(x_t), span(state), span(kernel), span(recurrent_kernel), span(bias)):
        _step_copied(x_t, state, kernel, recurrent_kernel, bias, act, out)
    else:
        _step_contiguous(x_t, state, kernel, recurrent_kernel, bias, act, out)


def _step_body(act, x_t, state, kernel, recurrent_kernel, bias, out):
    """The code of :func:`step` for these argument types (Numba types) and the static activation
    ``act``, compiled into the caller: :func:`_step_borrowed` on borrowed arrays (each array
    passed to a compiled function otherwise counts a reference up and down), 1-D rows as one-row
    batches, the arguments kept alive until it returns (:func:`.kernels.cpu.views.keep`)."""
    if x_t.ndim == 1:
        def one_row(x_t, state, kernel, recurrent_kernel, bias, out, activation="tanh"):
            _step_borrowed(borrowed(x_t)[np.newaxis], borrowed(state)[np.newaxis], borrowed(kernel),
                           borrowed(recurrent_kernel), borrowed(bias), act, borrowed(out)[np.newaxis])
            keep(x_t, state, kernel, recurrent_kernel, bias, out)
        return one_row

    def rows(x_t, state, kernel, recurrent_kernel, bias, out, activation="tanh"):
        _step_borrowed(borrowed(x_t), borrowed(state), borrowed(kernel), borrowed(recurrent_kernel),
                       borrowed(bias), act, borrowed(out))
        keep(x_t, state, kernel, recurrent_kernel, bias, out)
    return rows


def _forward_any(x, initial_state, kernel, recurrent_kernel, bias, outputs, act):
    """:func:`forward` with ``act`` a static choice; a single sequence as a one-row batch."""


@overload(_forward_any, jit_options=_FLAGS)
def _forward_any_impl(x, initial_state, kernel, recurrent_kernel, bias, outputs, act):
    if x.ndim == 2:
        return lambda x, initial_state, kernel, recurrent_kernel, bias, outputs, act: _forward_rows(
            x[np.newaxis], initial_state[np.newaxis], kernel, recurrent_kernel, bias,
            outputs[np.newaxis], act)
    return lambda x, initial_state, kernel, recurrent_kernel, bias, outputs, act: _forward_rows(
        x, initial_state, kernel, recurrent_kernel, bias, outputs, act)


@njit(**_FLAGS)
def _forward_rows(x, initial_state, kernel, recurrent_kernel, bias, outputs, act):
    """Each batch row through every step (rows are independent): ``outputs[b, t:t + 1]`` is a
    one-row batch, C-typed when ``outputs`` is, so that the step kernel's loops vectorise."""
    batch, steps, features = x.shape
    _check_weights(kernel.shape, recurrent_kernel.shape, bias.shape, features)
    units = kernel.shape[1]
    if initial_state.shape[0] != batch or initial_state.shape[1] != units:
        raise ValueError("initial_state must have shape (batch, units): x.shape[0], kernel.shape[1]")
    if outputs.shape[0] != batch or outputs.shape[1] != steps or outputs.shape[2] != units:
        raise ValueError("outputs must have shape (batch, timesteps, units): x.shape[:2], kernel.shape[1]")
    written = span(outputs)
    if (_meets(written, span(x)) or _meets(written, span(kernel)) or _meets(written, span(recurrent_kernel))
            or _meets(written, span(bias))):
        raise ValueError("outputs must not overlap x, kernel, recurrent_kernel or bias")
    initial = initial_state.copy() if _meets(written, span(initial_state)) else borrowed(initial_state)
    x, outputs = borrowed(x), borrowed(outputs)  # (the caller keeps them alive)
    kernel, recurrent_kernel, bias = borrowed(kernel), borrowed(recurrent_kernel), borrowed(bias)
    for b in range(batch):
        state = initial[b:b + 1]
        for t in range(steps):
            out = outputs[b, t:t + 1]
            _step_contiguous(x[b, t:t + 1], state, kernel, recurrent_kernel, bias, act, out)
            state = out


@njit(**_FLAGS)
def _run_step(x_t, state, kernel, recurrent_kernel, bias, act, out):
    """:func:`step` from Python, on validated 2-D arguments (alive until it returns)."""
    _step_borrowed(borrowed(x_t), borrowed(state), borrowed(kernel), borrowed(recurrent_kernel),
                   borrowed(bias), act, borrowed(out))


# ---------------------------------------------------------------- compiled-code typing
def _compiled_activation(activation):
    """The kernels' ``act`` for an ``activation`` argument typed by Numba; None when it is a
    string whose value is not known yet (the caller then asks for it as a literal); the error
    message for an unknown name (raised as ValueError when the call runs: a typing error here
    would make Numba ask for the literal again, and fail with a message about that instead)."""
    if isinstance(activation, types.Omitted):
        activation = activation.value
    elif isinstance(activation, types.StringLiteral):
        activation = activation.literal_value
    elif activation == types.unicode_type:
        return None
    if not isinstance(activation, str):
        raise errors.TypingError(
            f"activation must be a built-in activation name (str); received {activation}.")
    try:
        return choose(activations.canonical_name(activation))
    except ValueError as err:
        return str(err).replace(" or a callable", "")


def _check_types(arrays: dict, ranks: tuple) -> None:
    """Compile-time checks: arrays of one float dtype, each of an allowed rank."""
    dtypes = {getattr(a, "dtype", None) for a in arrays.values()}
    for (name, a), allowed in zip(arrays.items(), ranks):
        if not isinstance(a, types.Array) or a.ndim not in allowed:
            raise errors.TypingError(f"{name} must be a {' or '.join(f'{n}-D' for n in allowed)} array; "
                                     f"received {a}.")
    if len(dtypes) != 1 or next(iter(dtypes)) not in (types.float32, types.float64):
        raise errors.TypingError(f"all arrays must have one dtype, float32 or float64; received "
                                 f"{', '.join(f'{n}: {a.dtype}' for n, a in arrays.items())}.")


@overload(step, prefer_literal=True, inline="always", jit_options=_FLAGS)
def _step_overload(x_t, state, kernel, recurrent_kernel, bias, out, activation="tanh"):
    rows = x_t.ndim if isinstance(x_t, types.Array) else 2
    _check_types(dict(x_t=x_t, state=state, kernel=kernel, recurrent_kernel=recurrent_kernel, bias=bias,
                      out=out), ((rows,), (rows,), (2,), (2,), (1,), (rows,)))
    act = _compiled_activation(activation)
    if act is None:
        return lambda x_t, state, kernel, recurrent_kernel, bias, out, activation="tanh": \
            literally(activation)
    if isinstance(act, str):
        def unknown(x_t, state, kernel, recurrent_kernel, bias, out, activation="tanh"):
            raise ValueError(act)
        return unknown
    return _step_body(act, x_t, state, kernel, recurrent_kernel, bias, out)


@overload(forward, prefer_literal=True, jit_options=_FLAGS)
def _forward_overload(x, initial_state, kernel, recurrent_kernel, bias, outputs, activation="tanh"):
    rank = x.ndim if isinstance(x, types.Array) else 3
    _check_types(dict(x=x, initial_state=initial_state, kernel=kernel, recurrent_kernel=recurrent_kernel,
                      bias=bias, outputs=outputs), ((2, 3), (rank - 1,), (2,), (2,), (1,), (rank,)))
    act = _compiled_activation(activation)
    if act is None:
        return lambda x, initial_state, kernel, recurrent_kernel, bias, outputs, activation="tanh": \
            literally(activation)
    if isinstance(act, str):
        def unknown(x, initial_state, kernel, recurrent_kernel, bias, outputs, activation="tanh"):
            raise ValueError(act)
        return unknown

    def impl(x, initial_state, kernel, recurrent_kernel, bias, outputs, activation="tanh"):
        _forward_any(x, initial_state, kernel, recurrent_kernel, bias, outputs, act)
    return impl
