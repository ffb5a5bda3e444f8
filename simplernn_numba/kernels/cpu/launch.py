"""Runs of batch rows over Numba's threads, without compiling a kernel twice.

A plan that splits its batch into runs calls a *run kernel* ``kernel(*args, run, runs)``, which
works out its own rows from ``run`` and ``runs`` (:func:`row_pairs`, :func:`row_quads`) and
goes through every step on them. :func:`run_all` runs ``run = 0 .. runs - 1``: on the calling
thread for one run, else in a ``prange`` loop over Numba's threads
(:func:`simplernn_numba._threading.parallel_section`: runs handed out one at a time).

The ``prange`` loop calls the run kernel through its address: a ``parallel=True`` function that
called it directly would link the run kernel's code into its own and compile all of it again
(the panels path: 2.9 s more). Called through its address, the run kernel is compiled once,
as the serial calls use it, and the loop itself is a small function, one per argument types.

>>> import numpy as np
>>> from numba import njit
>>> @njit
... def fill(out, scale, offset, run, runs):
...     out[run] = scale * run + offset
>>> out = np.zeros(3, np.int64)
>>> run_all(fill, (out, 10, 1), 3)
>>> out.tolist()
[1, 11, 21]
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.core.errors import TypingError
from numba.extending import intrinsic

from ..._threading import parallel_section
from . import options

try:  # the key of a value's Numba type, as the dispatcher computes it (a microsecond)
    from numba._dispatcher import compute_fingerprint as _fingerprint
except ImportError:  # pragma: no cover - an older or newer Numba without it
    from numba import typeof as _fingerprint


@njit(**options.INLINE_PLAIN)
def row_pairs(batch, run, runs):
    """Rows ``lo, hi`` of ``run`` when ``batch`` rows are cut into ``runs`` runs of whole row
    pairs (the per-row paths: a pair of rows shares a tile)."""
    pairs = (batch + 1) // 2
    return min(batch, 2 * (run * pairs // runs)), min(batch, 2 * ((run + 1) * pairs // runs))


@njit(**options.INLINE_PLAIN)
def row_quads(batch, run, runs):
    """Rows ``lo, hi`` of ``run`` when ``batch`` rows are cut into ``runs`` runs of whole quads
    of rows (the panels path, and the gradient products)."""
    quads = (batch + 3) // 4
    return min(batch, 4 * (run * quads // runs)), min(batch, 4 * ((run + 1) * quads // runs))


@intrinsic
def _call(typingctx, address, args):
    """Call the Numba-compiled function at ``address`` (an int) on the elements of the tuple
    ``args``, whose types must be the function's own; False if it raised."""
    if not isinstance(args, types.BaseTuple) or not isinstance(address, types.Integer):
        raise TypingError("_call(address, args): an integer address and a tuple of arguments")

    def codegen(context, builder, signature, llargs):
        argtys = list(signature.args[1])
        values = [builder.extract_value(llargs[1], i) for i in range(len(argtys))]
        function = context.call_conv.get_function_type(types.none, argtys)
        pointer = builder.inttoptr(llargs[0], function.as_pointer())
        status, _ = context.call_conv.call_function(builder, pointer, types.none, argtys, values)
        return builder.not_(status.is_error)
    return types.boolean(address, args), codegen


# The prange loops, one per number of arguments of the run kernels (Numba's parallel loops take
# the arguments one by one: a tuple holding a tuple of arrays is refused).
_PARALLEL = options.PARALLEL


@njit(**_PARALLEL)
def _loop3(address, a0, a1, a2, runs, ok):
    for run in prange(runs):
        ok[run] = _call(address, (a0, a1, a2, np.int64(run), runs))


@njit(**_PARALLEL)
def _loop4(address, a0, a1, a2, a3, runs, ok):
    for run in prange(runs):
        ok[run] = _call(address, (a0, a1, a2, a3, np.int64(run), runs))


@njit(**_PARALLEL)
def _loop6(address, a0, a1, a2, a3, a4, a5, runs, ok):
    for run in prange(runs):
        ok[run] = _call(address, (a0, a1, a2, a3, a4, a5, np.int64(run), runs))


@njit(**_PARALLEL)
def _loop9(address, a0, a1, a2, a3, a4, a5, a6, a7, a8, runs, ok):
    for run in prange(runs):
        ok[run] = _call(address, (a0, a1, a2, a3, a4, a5, a6, a7, a8, np.int64(run), runs))


_LOOPS = {3: _loop3, 4: _loop4, 6: _loop6, 9: _loop9}
#: (kernel, fingerprint of its arguments) -> address of the compiled run kernel.
_ADDRESSES: dict = {}


def _address(kernel, args: tuple) -> int:
    """The address of ``kernel`` compiled for ``args`` plus ``(run, runs)``."""
    key = (kernel, _fingerprint(args))
    address = _ADDRESSES.get(key)
    if address is None:
        from numba import typeof

        signature = tuple(typeof(a) for a in args) + (types.int64, types.int64)
        kernel.compile(signature)
        result = kernel.overloads[signature]
        address = result.library.get_pointer_to_function(result.fndesc.llvm_func_name)
        _ADDRESSES[key] = address
    return address


def run_all(kernel, args: tuple, runs: int) -> None:
    """``kernel(*args, run, runs)`` for every ``run`` in ``range(runs)``, over Numba's threads
    when ``runs > 1`` (``args``: 3, 4, 6 or 9 of them, the run kernels' counts)."""
    if runs == 1:
        kernel(*args, 0, 1)
        return
    ok = np.empty(runs, np.bool_)
    with parallel_section():
        _LOOPS[len(args)](_address(kernel, args), *args, runs, ok)
    if not ok.all():
        raise RuntimeError(f"the CPU kernel {kernel.__name__} failed on {runs - ok.sum()} of "
                           f"{runs} runs of rows")
