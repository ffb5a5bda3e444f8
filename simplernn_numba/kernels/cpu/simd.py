"""A 32-byte SIMD vector value for Numba CPU kernels: loads, stores, broadcasts, FMAs and sums.

Numba has no vector type, and LLVM does not turn a tile of scalar accumulators into
vector registers by itself (an outer-product tile of 64 scalars compiled to scalar FMAs).
:class:`Vec` is an LLVM vector, ``<8 x float>`` or ``<4 x double>`` (one AVX2 register),
that a jitted function can keep in local variables: a loop that updates a few of them
keeps them in registers, so a register-tiled matrix product needs no reductions (see
:func:`simplernn_numba.kernels._products.tile`). Loads and stores are unaligned and
unchecked: callers keep every index in bounds. LLVM lowers the vectors for the host CPU:
two registers each with SSE or NEON, half of one with AVX-512; ``llvm.fma`` is one
instruction wherever the CPU has FMA.

>>> import numpy as np
>>> from numba import njit
>>> @njit
... def axpy(a, x, y):
...     vstore(y, 0, 0, vfma(vbroadcast(a, 0, 0), vload(x, 0, 0), vload(y, 0, 0)))
>>> y = np.ones((1, 8), np.float32)
>>> axpy(np.full((1, 1), 2, np.float32), np.arange(8, dtype=np.float32).reshape(1, 8), y)
>>> y.tolist()
[[1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0]]
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

from ..config import VECTOR_BYTES

#: Bytes per vector (:data:`..config.VECTOR_BYTES`).
WIDTH = VECTOR_BYTES


class Vec(types.Type):
    """``WIDTH`` bytes of ``dtype`` (float32: 8 lanes, float64: 4) as one LLVM vector."""

    def __init__(self, dtype: types.Float):
        self.dtype = dtype
        self.lanes = WIDTH // (dtype.bitwidth // 8)
        super().__init__(name=f"Vec({dtype} x {self.lanes})")


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.lanes))


def _item_pointer(context, builder, signature, args):
    """Pointer to ``array[i, j]`` (``args`` = array, i, j; no negative-index wraparound)."""
    array_type = signature.args[0]
    array = context.make_array(array_type)(context, builder, args[0])
    index = [context.cast(builder, v, t, types.intp) for v, t in zip(args[1:3], signature.args[1:3])]
    return cgutils.get_item_pointer(context, builder, array_type, array, index, wraparound=False)


def _vector_pointer(context, builder, signature, args):
    """Pointer to the vector starting at ``array[i, j]`` (``args`` = array, i, j)."""
    pointer = _item_pointer(context, builder, signature, args)
    return builder.bitcast(pointer, context.get_value_type(Vec(signature.args[0].dtype)).as_pointer())


def _check_matrix(array, contiguous=True):
    """Typing-time check: a 2-D float array, C-contiguous for vector loads and stores (so that
    a vector's lanes are consecutive elements)."""
    if not (isinstance(array, types.Array) and array.ndim == 2
            and isinstance(array.dtype, types.Float) and (array.layout == "C" or not contiguous)):
        raise TypeError(f"expected a 2-D float array{', C-contiguous' if contiguous else ''}, "
                        f"got {array}")


@intrinsic
def vload(typingctx, array, i, j):
    """The vector ``array[i, j:j + lanes]`` (2-D C-contiguous float array)."""
    _check_matrix(array)

    def codegen(context, builder, signature, args):
        pointer = _vector_pointer(context, builder, signature, args)
        return builder.load(pointer, align=array.dtype.bitwidth // 8)
    return Vec(array.dtype)(array, i, j), codegen


@intrinsic
def vstore(typingctx, array, i, j, value):
    """``array[i, j:j + lanes] = value``."""
    _check_matrix(array)

    def codegen(context, builder, signature, args):
        pointer = _vector_pointer(context, builder, signature, args)
        builder.store(args[3], pointer, align=array.dtype.bitwidth // 8)
        return context.get_dummy_value()
    return types.none(array, i, j, value), codegen


@intrinsic
def vbroadcast(typingctx, array, i, j):
    """A vector with every lane ``array[i, j]`` (indices used as given: unlike ``array[i, j]``
    in Numba, no code for negative indices, which a loop index LLVM cannot prove
    non-negative would pay on every load)."""
    _check_matrix(array, contiguous=False)
    vec = Vec(array.dtype)

    def codegen(context, builder, signature, args):
        scalar = builder.load(_item_pointer(context, builder, signature, args))
        ty = context.get_value_type(vec)
        one = builder.insert_element(ir.Constant(ty, ir.Undefined), scalar,
                                     ir.Constant(ir.IntType(32), 0))
        zeros = ir.Constant(ir.VectorType(ir.IntType(32), vec.lanes), [0] * vec.lanes)
        return builder.shuffle_vector(one, ir.Constant(ty, ir.Undefined), zeros)
    return vec(array, i, j), codegen


@intrinsic
def vterm(typingctx, array, k, p, transposed):
    """``array[p, k]`` broadcast to a vector, or ``array[k, p]`` with ``transposed`` (a bool,
    decided when compiling where it is a constant): an operand of a tile whose rows are ``p``
    and whose terms are ``k``, with the operand given row-major or transposed."""
    _check_matrix(array, contiguous=False)
    vec = Vec(array.dtype)
    literal = getattr(transposed, "literal_value", None)

    def codegen(context, builder, signature, args):
        kk = context.cast(builder, args[1], signature.args[1], types.intp)
        pp = context.cast(builder, args[2], signature.args[2], types.intp)
        if literal is None:
            flag = context.cast(builder, args[3], signature.args[3], types.boolean)
            i, j = builder.select(flag, kk, pp), builder.select(flag, pp, kk)
        else:
            i, j = (kk, pp) if literal else (pp, kk)
        at = types.none(signature.args[0], types.intp, types.intp)
        pointer = _item_pointer(context, builder, at, (args[0], i, j))
        scalar = builder.load(pointer)
        ty = context.get_value_type(vec)
        one = builder.insert_element(ir.Constant(ty, ir.Undefined), scalar,
                                     ir.Constant(ir.IntType(32), 0))
        zeros = ir.Constant(ir.VectorType(ir.IntType(32), vec.lanes), [0] * vec.lanes)
        return builder.shuffle_vector(one, ir.Constant(ty, ir.Undefined), zeros)
    return vec(array, k, p, transposed), codegen


@intrinsic
def vzero(typingctx, array):
    """A vector of zeros of ``array``'s dtype (float32 or float64)."""
    vec = Vec(array.dtype)

    def codegen(context, builder, signature, args):
        return ir.Constant(context.get_value_type(vec), None)
    return vec(array), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    """``a * b + c`` lane by lane, rounded once (``llvm.fma``: one instruction with FMA)."""
    def codegen(context, builder, signature, args):
        ty = args[0].type
        name = f"llvm.fma.v{ty.count}f{a.dtype.bitwidth}"
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ty, [ty] * 3), name)
        return builder.call(fma, args)
    return a(a, b, c), codegen


@intrinsic
def vadd(typingctx, a, b):
    """``a + b`` lane by lane."""
    def codegen(context, builder, signature, args):
        return builder.fadd(args[0], args[1])
    return a(a, b), codegen
