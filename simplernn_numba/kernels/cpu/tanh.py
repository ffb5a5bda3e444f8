"""Vectorisable ``tanh`` for the CPU kernels.

Numba compiles ``math.tanh`` to a scalar libm call per element, which stops a
loop vectorising (SVML is not available in the llvmlite wheels), so ``tanh``,
the default SimpleRNN activation, is written out here:

- float32: the rational approximation Eigen and XLA use (clamped at ±7.9, odd
  polynomial over even polynomial); max abs error about 1e-7, float32 rounding level.
- float64: ``tanh(a) = -t / (t + 2)`` with ``t = expm1(-2a)``, ``a = |x|`` clamped at
  22 (where tanh is 1 in float64), sign restored with ``copysign``; ``expm1`` by
  Cody-Waite range reduction and a degree-13 Taylor polynomial, ``2**k`` built from
  its bits. Within 3 ulp of libm (measured over 4 million points from 1e-320 to 30).

Both propagate NaN, map ±inf to ±1 and keep the sign of zero.

>>> [tanh_f64(v) for v in (-0.0, 0.5, float("inf"))]
[-0.0, 0.46211715726000974, 1.0]
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from . import options
from .simd import vclamp, vdiv, vfma, vmul, vsplat

_FLAGS = options.INLINE

_CLAMP32 = 7.90531110763549805
_P32 = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
        5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)
_Q32 = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)

_INV_LN2 = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
#: 1/2!, 1/3!, ..., 1/13!: expm1(r) = r + r**2 * (1/2! + r/3! + ... + r**11/13!)
_E = tuple(1.0 / math.factorial(n) for n in range(2, 14))


@njit(**_FLAGS)
def tanh_f32(v):
    """float32 tanh. The clamp lets NaN fall through both comparisons and propagate
    (a select on ``v == v`` would compile to a masked store, slow on AMD)."""
    f = np.float32
    x = f(_CLAMP32) if v > f(_CLAMP32) else v
    x = f(-_CLAMP32) if x < f(-_CLAMP32) else x
    x2 = x * x
    p = f(_P32[0])
    p = p * x2 + f(_P32[1])
    p = p * x2 + f(_P32[2])
    p = p * x2 + f(_P32[3])
    p = p * x2 + f(_P32[4])
    p = p * x2 + f(_P32[5])
    p = p * x2 + f(_P32[6])
    q = f(_Q32[0])
    q = q * x2 + f(_Q32[1])
    q = q * x2 + f(_Q32[2])
    q = q * x2 + f(_Q32[3])
    return (p * x) / q


@njit(**_FLAGS)
def tanh_f32_vector(v):
    """:func:`tanh_f32` of each lane of a float32 :class:`.simd.Vec`, with the same operations in
    the same order (the same bits as the scalar function), for a kernel that keeps the
    pre-activations in vector registers."""
    f = np.float32
    x = vclamp(v, vsplat(v, f(_CLAMP32)))
    x2 = vmul(x, x)
    p = vsplat(v, f(_P32[0]))
    p = vfma(p, x2, vsplat(v, f(_P32[1])))
    p = vfma(p, x2, vsplat(v, f(_P32[2])))
    p = vfma(p, x2, vsplat(v, f(_P32[3])))
    p = vfma(p, x2, vsplat(v, f(_P32[4])))
    p = vfma(p, x2, vsplat(v, f(_P32[5])))
    p = vfma(p, x2, vsplat(v, f(_P32[6])))
    q = vsplat(v, f(_Q32[0]))
    q = vfma(q, x2, vsplat(v, f(_Q32[1])))
    q = vfma(q, x2, vsplat(v, f(_Q32[2])))
    q = vfma(q, x2, vsplat(v, f(_Q32[3])))
    return vdiv(vmul(p, x), q)


@intrinsic
def _float64_from_bits(typingctx, bits):
    """Reinterpret an int64 as a float64 (an LLVM bitcast, which vectorises)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@intrinsic
def _bits_of_float64(typingctx, value):
    """Reinterpret a float64 as an int64 (an LLVM bitcast, which vectorises)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


#: 1.5 * 2**52: for an integer-valued float64 ``k`` with ``|k| < 2**51``, the low bits of
#: ``k + _ROUND_BITS`` hold ``k`` as a two's-complement integer.
_ROUND_BITS = 6755399441055744.0


@njit(**_FLAGS)
def tanh_f64(x):
    """float64 tanh within 3 ulp of libm, branch-free."""
    a = abs(x)
    a = 22.0 if a > 22.0 else a  # NaN stays NaN
    y = -2.0 * a
    kf = np.floor(y * _INV_LN2 + 0.5)
    r = (y - kf * _LN2_HI) - kf * _LN2_LO  # |r| <= ln(2) / 2
    p = _E[11]
    p = p * r + _E[10]
    p = p * r + _E[9]
    p = p * r + _E[8]
    p = p * r + _E[7]
    p = p * r + _E[6]
    p = p * r + _E[5]
    p = p * r + _E[4]
    p = p * r + _E[3]
    p = p * r + _E[2]
    p = p * r + _E[1]
    p = p * r + _E[0]
    p = r + r * r * p  # expm1(r)
    # 2**k, -64 <= k <= 0, built from k's bits: AVX2 has no vector float -> int64 conversion, so
    # ``np.int64(kf)`` would be four scalar conversions per vector (a NaN gives a NaN ``p``)
    scale = _float64_from_bits((_bits_of_float64(kf + _ROUND_BITS) + 1023) << 52)
    t = scale * p + (scale - 1.0)  # expm1(y) = 2**k * expm1(r) + 2**k - 1
    return math.copysign(-t / (t + 2.0), x)
