"""A SIMD vector value for Numba CPU kernels: loads, stores, broadcasts, FMAs and sums.

Numba has no vector type, and LLVM does not turn a tile of scalar accumulators into
vector registers by itself (an outer-product tile of 64 scalars compiled to scalar FMAs).
:class:`Vec` is an LLVM vector of 32 bytes (``<8 x float>``, ``<4 x double>``: one AVX2
register) or 64 bytes (one AVX-512 register) that a jitted function can keep in local
variables: a loop that updates a few of them keeps them in registers, so a register-tiled
matrix product needs no reductions (see :func:`.products.tile`). The width is a static choice
(:func:`width`, :func:`widest`) given to the loads, broadcasts and zeros; stores, FMAs and sums
take it from their vectors. Loads and stores are unaligned and unchecked: callers keep every
index in bounds. LLVM lowers the vectors for the CPU: a 32-byte vector is two registers with SSE
or NEON; ``llvm.fma`` is one instruction wherever the CPU has FMA.

>>> import numpy as np
>>> from numba import njit
>>> @njit
... def axpy(a, x, y, w):
...     vstore(y, 0, 0, vfma(vbroadcast(a, 0, 0, w), vload(x, 0, 0, w), vload(y, 0, 0, w)))
>>> y = np.ones((1, 8), np.float32)
>>> axpy(np.full((1, 1), 2, np.float32), np.arange(8, dtype=np.float32).reshape(1, 8), y, width(32))
>>> y.tolist()
[[1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0]]
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.errors import RequireLiteralValue, TypingError
from numba.extending import intrinsic, models, overload, register_model

from ..config import VECTOR_BYTES
from . import options
from .specialise import static, value_of

#: Bytes per vector of each width choice (the static value of :func:`width`).
BYTES = (32, 64)


def width(vector_bytes: int) -> tuple:
    """The static ``width`` argument for vectors of ``vector_bytes`` (32 or 64) bytes."""
    return static(BYTES.index(vector_bytes))


def widest():
    """The static width of the CPU's widest vectors (:data:`..config.VECTOR_BYTES`), in a
    jitted function."""


@overload(widest, inline="always", jit_options=options.OVERLOAD_CACHED)
def _widest():
    if VECTOR_BYTES == BYTES[0]:
        return lambda: (None,)
    return lambda: (None, None)


def _bytes(choice) -> int:
    """Vector bytes from a width's Numba type (while compiling)."""
    return BYTES[value_of(choice)]


class Vec(types.Type):
    """``size`` bytes of ``dtype`` (32 bytes of float32: 8 lanes; of float64: 4) as one LLVM vector."""

    def __init__(self, dtype: types.Float, size: int):
        self.dtype = dtype
        self.size = size
        self.lanes = size // (dtype.bitwidth // 8)
        super().__init__(name=f"Vec({dtype} x {self.lanes})")


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.lanes))


def lane_count(width, itemsize):
    """Elements of ``itemsize`` bytes in a vector of ``width`` (a constant once compiled)."""


@overload(lane_count, inline="always", jit_options=options.OVERLOAD_CACHED)
def _lane_count(width, itemsize):
    size = _bytes(width)
    return lambda width, itemsize: size // itemsize


def _item_pointer(context, builder, signature, args):
    """Pointer to ``array[i, j]`` (``args`` = array, i, j; no negative-index wraparound)."""
    array_type = signature.args[0]
    array = context.make_array(array_type)(context, builder, args[0])
    index = [context.cast(builder, v, t, types.intp) for v, t in zip(args[1:3], signature.args[1:3])]
    return cgutils.get_item_pointer(context, builder, array_type, array, index, wraparound=False)


def _vector_pointer(context, builder, signature, args, vec):
    """Pointer to the vector ``vec`` starting at ``array[i, j]`` (``args`` = array, i, j)."""
    pointer = _item_pointer(context, builder, signature, args)
    return builder.bitcast(pointer, context.get_value_type(vec).as_pointer())


def _check_matrix(array, contiguous=True):
    """Typing-time check: a 2-D float array, C-contiguous for vector loads and stores (so that
    a vector's lanes are consecutive elements)."""
    if not (isinstance(array, types.Array) and array.ndim == 2
            and isinstance(array.dtype, types.Float) and (array.layout == "C" or not contiguous)):
        raise TypingError(f"expected a 2-D float array{', C-contiguous' if contiguous else ''}, "
                          f"got {array}")


def _broadcast(context, builder, vec, scalar):
    ty = context.get_value_type(vec)
    one = builder.insert_element(ir.Constant(ty, ir.Undefined), scalar, ir.Constant(ir.IntType(32), 0))
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), vec.lanes), [0] * vec.lanes)
    return builder.shuffle_vector(one, ir.Constant(ty, ir.Undefined), zeros)


@intrinsic
def vload(typingctx, array, i, j, width):
    """The vector ``array[i, j:j + lanes]`` (2-D C-contiguous float array)."""
    _check_matrix(array)
    vec = Vec(array.dtype, _bytes(width))

    def codegen(context, builder, signature, args):
        pointer = _vector_pointer(context, builder, signature, args, vec)
        return builder.load(pointer, align=array.dtype.bitwidth // 8)
    return vec(array, i, j, width), codegen


@intrinsic
def vload_row(typingctx, array, j, width):
    """The vector ``array[j:j + lanes]`` (1-D C-contiguous float array, such as a bias)."""
    if not (isinstance(array, types.Array) and array.ndim == 1
            and isinstance(array.dtype, types.Float) and array.layout == "C"):
        raise TypingError(f"expected a 1-D C-contiguous float array, got {array}")
    vec = Vec(array.dtype, _bytes(width))

    def codegen(context, builder, signature, args):
        base = context.make_array(signature.args[0])(context, builder, args[0])
        index = context.cast(builder, args[1], signature.args[1], types.intp)
        pointer = builder.gep(base.data, [index], inbounds=True)
        pointer = builder.bitcast(pointer, context.get_value_type(vec).as_pointer())
        return builder.load(pointer, align=array.dtype.bitwidth // 8)
    return vec(array, j, width), codegen


@intrinsic
def vload_at(typingctx, array, i, j, n, width):
    """The vector ``array[i, j + n * lanes:j + (n + 1) * lanes]`` with ``n`` a literal: its offset
    from ``array[i, j]`` is a constant of the load instruction. (Offsets added to ``j`` at run
    time, as in ``vload(w, k, j + lanes, W)``, can each take a register of their own: a one-row
    step kept eight such offsets on the stack and reloaded them every ``k``.)"""
    _check_matrix(array)
    if not isinstance(n, types.IntegerLiteral):
        raise RequireLiteralValue("vload_at's n must be a literal")
    vec = Vec(array.dtype, _bytes(width))
    offset = ir.Constant(ir.IntType(64), n.literal_value * vec.lanes)

    def codegen(context, builder, signature, args):
        pointer = builder.gep(_item_pointer(context, builder, signature, args), [offset], inbounds=True)
        pointer = builder.bitcast(pointer, context.get_value_type(vec).as_pointer())
        return builder.load(pointer, align=array.dtype.bitwidth // 8)
    return vec(array, i, j, n, width), codegen


@intrinsic
def vstore(typingctx, array, i, j, value):
    """``array[i, j:j + lanes] = value``."""
    _check_matrix(array)

    def codegen(context, builder, signature, args):
        pointer = _vector_pointer(context, builder, signature, args, value)
        builder.store(args[3], pointer, align=array.dtype.bitwidth // 8)
        return context.get_dummy_value()
    return types.none(array, i, j, value), codegen


@intrinsic
def vbroadcast(typingctx, array, i, j, width):
    """A vector with every lane ``array[i, j]`` (indices used as given: unlike ``array[i, j]``
    in Numba, no code for negative indices, which a loop index LLVM cannot prove
    non-negative would pay on every load)."""
    _check_matrix(array, contiguous=False)
    vec = Vec(array.dtype, _bytes(width))

    def codegen(context, builder, signature, args):
        scalar = builder.load(_item_pointer(context, builder, signature, args))
        return _broadcast(context, builder, vec, scalar)
    return vec(array, i, j, width), codegen


@intrinsic
def vterm(typingctx, array, k, p, transposed, width):
    """``array[p, k]`` broadcast to a vector, or ``array[k, p]`` with ``transposed`` (a bool,
    decided when compiling where it is a constant): an operand of a tile whose rows are ``p``
    and whose terms are ``k``, with the operand given row-major or transposed."""
    _check_matrix(array, contiguous=False)
    vec = Vec(array.dtype, _bytes(width))
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
        scalar = builder.load(_item_pointer(context, builder, at, (args[0], i, j)))
        return _broadcast(context, builder, vec, scalar)
    return vec(array, k, p, transposed, width), codegen


@intrinsic
def vzero(typingctx, array, width):
    """A vector of zeros of ``array``'s dtype (float32 or float64)."""
    vec = Vec(array.dtype, _bytes(width))

    def codegen(context, builder, signature, args):
        return ir.Constant(context.get_value_type(vec), None)
    return vec(array, width), codegen


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


@intrinsic
def vmul(typingctx, a, b):
    """``a * b`` lane by lane."""
    def codegen(context, builder, signature, args):
        return builder.fmul(args[0], args[1])
    return a(a, b), codegen


@intrinsic
def vdiv(typingctx, a, b):
    """``a / b`` lane by lane."""
    def codegen(context, builder, signature, args):
        return builder.fdiv(args[0], args[1])
    return a(a, b), codegen


@intrinsic
def vsplat(typingctx, like, value):
    """A vector like ``like`` (a :class:`Vec`) with every lane ``value`` (a number, converted to
    its dtype; a constant folds into the code)."""
    if not isinstance(like, Vec):
        raise TypingError(f"vsplat expects a vector first, got {like}")

    def codegen(context, builder, signature, args):
        scalar = context.cast(builder, args[1], signature.args[1], like.dtype)
        return _broadcast(context, builder, like, scalar)
    return like(like, value), codegen


@intrinsic
def vclamp(typingctx, v, limit):
    """``limit`` where ``v > limit``, ``-limit`` where ``v < -limit``, else ``v`` lane by lane
    (two ordered comparisons and selects: a NaN lane falls through both and stays NaN)."""
    def codegen(context, builder, signature, args):
        x, c = args
        x = builder.select(builder.fcmp_ordered(">", x, c), c, x)
        low = builder.fneg(c)
        return builder.select(builder.fcmp_ordered("<", x, low), low, x)
    return v(v, limit), codegen
