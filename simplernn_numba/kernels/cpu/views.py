"""Array views and facts for compiled callers of the kernels (:mod:`simplernn_numba.compiled`).

Each is an intrinsic: it compiles to a few LLVM instructions where it is called, with none of the
typing work of an inlined Numba function (a caller that inlined a dozen small helpers taking
arrays spent seconds compiling them).

- :func:`as_c`: an array typed C-contiguous (for one that :func:`is_c` accepts), so that the
  kernels' vector loads apply and their loops vectorise; :func:`as_any`: typed with any layout.
- :func:`borrowed` and :func:`keep`: an array passed on without counting references, and the
  use that keeps the original alive until the callee has returned.
- :func:`span`: the bytes an array touches, to find overlapping arguments.
"""

from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.core.errors import TypingError
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic


def _array(a) -> None:
    if not isinstance(a, types.Array):
        raise TypingError(f"expected an array, got {a}")


def _same_array(context, builder, signature, args):
    """Code of an intrinsic that returns its array argument under another type."""
    return impl_ret_borrowed(context, builder, signature.return_type, args[0])


@intrinsic
def as_c(typingctx, a):
    """``a`` typed as C-contiguous (the same array): only for an array :func:`is_c` accepts.
    Numba addresses a C-typed array from its shape, so the step kernel's loops over a row
    vectorise, which they do not over a row whose stride is only known at run time."""
    _array(a)
    return a.copy(layout="C")(a), _same_array


@intrinsic
def as_any(typingctx, a):
    """``a`` typed with any layout (the same array): callers whose arrays come in several
    layouts then share one compiled variant of a kernel that reads ``a`` by its strides."""
    _array(a)
    return a.copy(layout="A")(a), _same_array


@intrinsic
def borrowed(typingctx, a):
    """``a`` without its reference count (no memory owner, no parent object), for a call whose
    caller keeps ``a`` alive (:func:`keep`): a compiled function counts the references of its
    array arguments up on entry and down on exit, with atomic operations that cost a step kernel
    more than its arithmetic (12 of them, about 60 ns, against about 40 ns at 8 features and 32
    units)."""
    _array(a)

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        array.meminfo = cgutils.get_null_value(array.meminfo.type)
        array.parent = cgutils.get_null_value(array.parent.type)
        return array._getvalue()
    return a(a), codegen


@intrinsic
def keep(typingctx, x_t, state, kernel, recurrent_kernel, bias, out):
    """Nothing, but a use of a step's six arrays: Numba releases a variable after its last use,
    so arrays passed on :func:`borrowed` stay alive until here."""
    def codegen(context, builder, signature, args):
        return context.get_dummy_value()
    return types.none(x_t, state, kernel, recurrent_kernel, bias, out), codegen


def _shape_and_strides(context, builder, array_type, value):
    array = context.make_array(array_type)(context, builder, value)
    ndim = array_type.ndim
    return (array, cgutils.unpack_tuple(builder, array.shape, ndim),
            cgutils.unpack_tuple(builder, array.strides, ndim))


@intrinsic
def is_c(typingctx, a):
    """Whether ``a`` is C-contiguous, as NumPy's flag says (axes of length 1 may have any stride)."""
    _array(a)

    def codegen(context, builder, signature, args):
        _, shape, strides = _shape_and_strides(context, builder, a, args[0])
        intp = context.get_value_type(types.intp)
        expected = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(a.dtype)))
        ok = cgutils.true_bit
        one = intp(1)
        for d in reversed(range(a.ndim)):
            fits = builder.or_(builder.icmp_signed("==", shape[d], one),
                               builder.icmp_signed("==", strides[d], expected))
            ok = builder.and_(ok, fits)
            expected = builder.mul(expected, shape[d])
        return ok
    return types.boolean(a), codegen


@intrinsic
def span(typingctx, a):
    """``(first, end)``: the first byte address that ``a`` touches and one past its last; ``(0,
    0)`` when ``a`` is empty. Two arrays overlap where their spans meet (conservative for strided
    views)."""
    _array(a)
    result = types.UniTuple(types.intp, 2)

    def codegen(context, builder, signature, args):
        array, shape, strides = _shape_and_strides(context, builder, a, args[0])
        intp = context.get_value_type(types.intp)
        zero = intp(0)
        first = builder.ptrtoint(array.data, intp)
        last = first
        empty = cgutils.false_bit
        for d in range(a.ndim):
            empty = builder.or_(empty, builder.icmp_signed("==", shape[d], zero))
            extent = builder.mul(builder.sub(shape[d], intp(1)), strides[d])
            negative = builder.icmp_signed("<", extent, zero)
            first = builder.add(first, builder.select(negative, extent, zero))
            last = builder.add(last, builder.select(negative, zero, extent))
        size = intp(context.get_abi_sizeof(context.get_data_type(a.dtype)))
        end = builder.add(last, size)
        pair = (builder.select(empty, zero, first), builder.select(empty, zero, end))
        return context.make_tuple(builder, result, pair)
    return result(a), codegen
