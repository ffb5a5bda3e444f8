"""What selects code when a CPU kernel compiles: static choices and absent arrays.

Numba compiles one variant of a function per combination of argument *types*, and drops a
branch only where the types decide it. A choice passed as an ``int`` is a run-time value, so
every branch on it is compiled into every variant (all sixteen activations into a tanh kernel).
Two conventions keep a variant down to the code it runs:

- :func:`static` carries a small integer (an activation code, a tile shape) in a type: a tuple of
  Nones whose length is the value plus one. Numba's dispatcher types such a tuple as fast as an
  ``int``, and an ``@overload`` reads the value back with :func:`value_of` while it compiles,
  returning only the code for that value.
- An absent optional array (mask, dropout masks) is ``None``, everywhere. Kernels never test it
  themselves (inside a named tuple of arguments Numba would type both branches); they read it
  through the helpers below, whose ``None`` variant compiles to a constant.

>>> static(2)
(None, None, None)
"""

from __future__ import annotations

from numba import types
from numba.extending import overload

from . import options

_INLINE = dict(inline="always", jit_options=options.OVERLOAD_EXACT)


def static(value: int) -> tuple:
    """``value`` (a small non-negative int) as a compile-time choice for the kernels."""
    return (None,) * (value + 1)


def value_of(choice: types.BaseTuple) -> int:
    """The integer a :func:`static` argument carries, from its Numba type (inside overloads)."""
    if not isinstance(choice, types.BaseTuple) or len(choice) == 0:
        raise TypeError(f"expected a static choice (a tuple of Nones), got {choice}")
    return len(choice) - 1


def skipped(mask, b, t):
    """Whether step ``t`` of row ``b`` is masked out (never, without a mask)."""


@overload(skipped, **_INLINE)
def _skipped(mask, b, t):
    if mask is None or isinstance(mask, types.NoneType):
        return lambda mask, b, t: False
    return lambda mask, b, t: not mask[b, t]


def times(value, scale, b, k):
    """``value * scale[b, k]``, or ``value`` without a scale (dropout masks)."""


@overload(times, **_INLINE)
def _times(value, scale, b, k):
    if scale is None or isinstance(scale, types.NoneType):
        return lambda value, scale, b, k: value
    return lambda value, scale, b, k: value * scale[b, k]


def absent(array):
    """True for an absent optional array (a constant once compiled)."""


@overload(absent, **_INLINE)
def _absent(array):
    if array is None or isinstance(array, types.NoneType):
        return lambda array: True
    return lambda array: False


def row_or(array, b, t, fallback):
    """``array[b, t]``, or ``fallback`` without the array."""


@overload(row_or, **_INLINE)
def _row_or(array, b, t, fallback):
    if array is None or isinstance(array, types.NoneType):
        return lambda array, b, t, fallback: fallback
    return lambda array, b, t, fallback: array[b, t]
