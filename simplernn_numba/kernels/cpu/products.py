"""Register-tiled matrix products, and the backward pass's matrix products without BLAS.

:func:`tiled_product` is the inner step of the CPU recurrences: ``z = v @ w`` for a
few rows ``v`` by a weight matrix ``w`` (K, U) that stays in cache, as tiles of rows by
vectors of units (:data:`TILE_SHAPES`) whose partial results (rows x vectors, four to eight)
stay in vector registers (:mod:`.simd`) while ``k`` runs: one vector load of ``w`` feeds every row of
the tile, one broadcast of ``v`` every vector, and there is no reduction at the end.

:func:`product` is a run's input projection ``x @ kernel`` for all its timesteps (many
rows), by tiles of four rows and twelve accumulators, on the run's own thread.

The panel-packed products of the panels path are in :mod:`.panel_products`, the backward
pass's gradient products in :mod:`.gradient_products`.
"""

from __future__ import annotations

import functools

from numba import njit
from numba.extending import overload

from .. import config
from ..config import (
    ONE_ROW_PARTIALS,
    PRODUCT_ROW_BLOCK,
    PRODUCT_TILE_ROWS,
    TWO_ROW_PARTIALS,
    VECTOR_BYTES,
)
from . import options
from .simd import (
    BYTES,
    lane_count,
    vadd,
    vbroadcast,
    vfma,
    vload,
    vload_at,
    vstore,
    vterm,
    vzero,
)
from .specialise import value_of

#: Reassociation lets LLVM keep vector partial sums, contraction gives FMAs; NaN/inf semantics
#: are kept. NumPy's error model: no branch guarding each division (which stops loops vectorising).
_FLAGS = options.PRODUCTS


#: Shapes of the tiles of :func:`tiled_product`, (rows, vectors of units, bytes per vector): the
#: rows it is padded to, the vectors of units the weights are padded to and the vectors' width
#: (:mod:`.simd`: 64 bytes is one AVX-512 register). The one-row shapes are
#: :func:`one_row_tiles` (four or two vectors, each of partial sums over ``k``: the same number of
#: accumulators either way), the two-row ones :func:`tile` (eight accumulators) and the four-row
#: ones :func:`four_row_tiles` (4x3 tiles of twelve accumulators, the last columns 4x2).
TILE_SHAPES = ((4, 2, 64), (2, 4, 64), (1, 4, 64), (4, 2, 32), (2, 4, 32), (1, 4, 32), (1, 2, 64),
               (1, 2, 32))


@njit(inline="always", **_FLAGS)
def tile(w, v, z, r, u, R, V, k0, k1, T, W):
    """``z[r:r + R, u:u + V * lanes] = v[r:r + R] @ w[:, u:u + V * lanes]`` (``R * V == 8``,
    literal constants: the tile folds to eight vector registers, no reductions). ``w`` is
    (K, U), ``v`` (rows, K), ``z`` (rows, U), last axes contiguous, and the tile must lie inside.
    Only ``k`` in ``k0:k1`` runs; from ``k0 > 0`` on the tile adds to ``z`` (a product blocked
    over ``K``). With ``T`` (literal) ``v`` is given transposed, (K, rows).
    Every element is one FMA per ``k`` in order from zero, whatever the tile shape."""
    lanes = lane_count(W, w.itemsize)
    # row and first unit of each accumulator (constants apart from r and u once inlined)
    p0, p1, p2, p3, p4, p5, p6, p7 = r, r + 1 // V, r + 2 // V, r + 3 // V, r + 4 // V, \
        r + 5 // V, r + 6 // V, r + 7 // V
    c0, c1, c2, c3 = u, u + 1 % V * lanes, u + 2 % V * lanes, u + 3 % V * lanes
    c4, c5, c6, c7 = u + 4 % V * lanes, u + 5 % V * lanes, u + 6 % V * lanes, u + 7 % V * lanes
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = vzero(w, W)
    if k0 > 0:
        a0, a1 = vload(z, p0, c0, W), vload(z, p1, c1, W)
        a2, a3 = vload(z, p2, c2, W), vload(z, p3, c3, W)
        a4, a5 = vload(z, p4, c4, W), vload(z, p5, c5, W)
        a6, a7 = vload(z, p6, c6, W), vload(z, p7, c7, W)
    for k in range(k0, k1):
        a0 = vfma(vterm(v, k, p0, T, W), vload(w, k, c0, W), a0)
        a1 = vfma(vterm(v, k, p1, T, W), vload(w, k, c1, W), a1)
        a2 = vfma(vterm(v, k, p2, T, W), vload(w, k, c2, W), a2)
        a3 = vfma(vterm(v, k, p3, T, W), vload(w, k, c3, W), a3)
        a4 = vfma(vterm(v, k, p4, T, W), vload(w, k, c4, W), a4)
        a5 = vfma(vterm(v, k, p5, T, W), vload(w, k, c5, W), a5)
        a6 = vfma(vterm(v, k, p6, T, W), vload(w, k, c6, W), a6)
        a7 = vfma(vterm(v, k, p7, T, W), vload(w, k, c7, W), a7)
    vstore(z, p0, c0, a0)
    vstore(z, p1, c1, a1)
    vstore(z, p2, c2, a2)
    vstore(z, p3, c3, a3)
    vstore(z, p4, c4, a4)
    vstore(z, p5, c5, a5)
    vstore(z, p6, c6, a6)
    vstore(z, p7, c7, a7)


def row_partials(w, v, r, u, shape):
    """``v[r] @ w[:, u:u + V * lanes]`` for one row as the tuple of the ``V`` vectors of the one-row
    shape ``TILE_SHAPES[shape]`` (a static choice): :func:`_four_vector_partials` or
    :func:`_two_vector_partials`. ``w`` (K, U) C-contiguous, ``v`` (rows, K) any strides."""


@overload(row_partials, inline="always", jit_options=options.OVERLOAD_CACHED)
def _row_partials(w, v, r, u, shape):
    two = TILE_SHAPES[value_of(shape)][1] == 2
    partials = _two_vector_partials if two else _four_vector_partials
    return lambda w, v, r, u, shape: partials(w, v, r, u, shape_width(shape))


@njit(inline="always", **_FLAGS)
def _four_vector_partials(w, v, r, u, W):
    """``v[r] @ w[:, u:u + 4 * lanes]`` for one row as four vectors, each the sum of
    :data:`..config.ONE_ROW_PARTIALS` partial sums over the quarters (or halves) of ``k`` (the
    first takes the terms left over), added as ``(p0 + p1) + (p2 + p3)`` (or ``p0 + p1``): a
    step's chain of dependent FMAs is a quarter (a half) of one chain's. Each partial sum is one
    FMA per ``k`` in order; the result differs from :func:`tile` 's in rounding only."""
    depth = w.shape[0]
    q = depth // ONE_ROW_PARTIALS
    a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = vzero(w, W)
    d0 = d1 = d2 = d3 = e0 = e1 = e2 = e3 = vzero(w, W)
    for k in range(q):
        x = vbroadcast(v, r, k, W)
        a0, a1 = vfma(x, vload_at(w, k, u, 0, W), a0), vfma(x, vload_at(w, k, u, 1, W), a1)
        a2, a3 = vfma(x, vload_at(w, k, u, 2, W), a2), vfma(x, vload_at(w, k, u, 3, W), a3)
        j = q + k
        x = vbroadcast(v, r, j, W)
        b0, b1 = vfma(x, vload_at(w, j, u, 0, W), b0), vfma(x, vload_at(w, j, u, 1, W), b1)
        b2, b3 = vfma(x, vload_at(w, j, u, 2, W), b2), vfma(x, vload_at(w, j, u, 3, W), b3)
        if ONE_ROW_PARTIALS == 4:
            j = 2 * q + k
            x = vbroadcast(v, r, j, W)
            d0, d1 = vfma(x, vload_at(w, j, u, 0, W), d0), vfma(x, vload_at(w, j, u, 1, W), d1)
            d2, d3 = vfma(x, vload_at(w, j, u, 2, W), d2), vfma(x, vload_at(w, j, u, 3, W), d3)
            j = 3 * q + k
            x = vbroadcast(v, r, j, W)
            e0, e1 = vfma(x, vload_at(w, j, u, 0, W), e0), vfma(x, vload_at(w, j, u, 1, W), e1)
            e2, e3 = vfma(x, vload_at(w, j, u, 2, W), e2), vfma(x, vload_at(w, j, u, 3, W), e3)
    for k in range(ONE_ROW_PARTIALS * q, depth):
        x = vbroadcast(v, r, k, W)
        a0, a1 = vfma(x, vload_at(w, k, u, 0, W), a0), vfma(x, vload_at(w, k, u, 1, W), a1)
        a2, a3 = vfma(x, vload_at(w, k, u, 2, W), a2), vfma(x, vload_at(w, k, u, 3, W), a3)
    if ONE_ROW_PARTIALS == 4:
        return (vadd(vadd(a0, b0), vadd(d0, e0)), vadd(vadd(a1, b1), vadd(d1, e1)),
                vadd(vadd(a2, b2), vadd(d2, e2)), vadd(vadd(a3, b3), vadd(d3, e3)))
    return vadd(a0, b0), vadd(a1, b1), vadd(a2, b2), vadd(a3, b3)


@njit(inline="always", **_FLAGS)
def _term2(w, v, r, j, u, s0, s1, W):
    """``(s0, s1)`` plus ``v[r, j]`` times the two vectors ``w[j, u:u + 2 * lanes]``."""
    x = vbroadcast(v, r, j, W)
    return vfma(x, vload_at(w, j, u, 0, W), s0), vfma(x, vload_at(w, j, u, 1, W), s1)


@njit(inline="always", **_FLAGS)
def _term4(w, v, r, j, u, s0, s1, s2, s3, W):
    """``(s0, s1, s2, s3)`` plus ``v[r, j]`` times the four vectors ``w[j, u:u + 4 * lanes]``."""
    x = vbroadcast(v, r, j, W)
    return (vfma(x, vload_at(w, j, u, 0, W), s0), vfma(x, vload_at(w, j, u, 1, W), s1),
            vfma(x, vload_at(w, j, u, 2, W), s2), vfma(x, vload_at(w, j, u, 3, W), s3))


def row_product(w, v, r, u, shape):
    """``v[r] @ w[:, u:u + V * lanes]`` for one row as the ``V`` vectors of the one-row shape
    ``TILE_SHAPES[shape]`` (a static choice), one FMA per ``k`` in order from zero: the bits of
    :func:`tile` and :func:`product`. ``w`` (K, U) C-contiguous, ``v`` (rows, K) any strides."""


@overload(row_product, inline="always", jit_options=options.OVERLOAD_CACHED)
def _row_product(w, v, r, u, shape):
    if TILE_SHAPES[value_of(shape)][1] == 2:
        def two(w, v, r, u, shape):
            W = shape_width(shape)
            s0 = s1 = vzero(w, W)
            for k in range(w.shape[0]):
                s0, s1 = _term2(w, v, r, k, u, s0, s1, W)
            return s0, s1
        return two

    def four(w, v, r, u, shape):
        W = shape_width(shape)
        s0 = s1 = s2 = s3 = vzero(w, W)
        for k in range(w.shape[0]):
            s0, s1, s2, s3 = _term4(w, v, r, k, u, s0, s1, s2, s3, W)
        return s0, s1, s2, s3
    return four


@njit(inline="always", **_FLAGS)
def _two_vector_partials(w, v, r, u, W):
    """``v[r] @ w[:, u:u + 2 * lanes]`` for one row as two vectors, each the sum of twice
    :data:`..config.ONE_ROW_PARTIALS` partial sums (the accumulators of
    :func:`_four_vector_partials`) over the eighths (or quarters) of ``k``, the first taking the
    terms left over, added as a balanced tree. Each partial sum is one FMA per ``k`` in order."""
    depth = w.shape[0]
    partials = 2 * ONE_ROW_PARTIALS
    q = depth // partials
    a0 = a1 = b0 = b1 = c0 = c1 = d0 = d1 = vzero(w, W)
    e0 = e1 = f0 = f1 = g0 = g1 = h0 = h1 = vzero(w, W)
    for k in range(q):
        a0, a1 = _term2(w, v, r, k, u, a0, a1, W)
        b0, b1 = _term2(w, v, r, q + k, u, b0, b1, W)
        c0, c1 = _term2(w, v, r, 2 * q + k, u, c0, c1, W)
        d0, d1 = _term2(w, v, r, 3 * q + k, u, d0, d1, W)
        if partials == 8:
            e0, e1 = _term2(w, v, r, 4 * q + k, u, e0, e1, W)
            f0, f1 = _term2(w, v, r, 5 * q + k, u, f0, f1, W)
            g0, g1 = _term2(w, v, r, 6 * q + k, u, g0, g1, W)
            h0, h1 = _term2(w, v, r, 7 * q + k, u, h0, h1, W)
    for k in range(partials * q, depth):
        a0, a1 = _term2(w, v, r, k, u, a0, a1, W)
    s0, s1 = vadd(vadd(a0, b0), vadd(c0, d0)), vadd(vadd(a1, b1), vadd(c1, d1))
    if partials == 8:
        return (vadd(s0, vadd(vadd(e0, f0), vadd(g0, h0))),
                vadd(s1, vadd(vadd(e1, f1), vadd(g1, h1))))
    return s0, s1


def row_pair_partials(w, v, r, u, shape):
    """``v[r:r + 2] @ w[:, u:u + V * lanes]`` for two rows as two tuples of the ``V`` vectors of the
    one-row shape ``TILE_SHAPES[shape]`` (a static choice): :func:`_four_vector_pair` or
    :func:`_two_vector_pair`. ``w`` (K, U) C-contiguous, ``v`` (rows, K) any strides."""


@overload(row_pair_partials, inline="always", jit_options=options.OVERLOAD_CACHED)
def _row_pair_partials(w, v, r, u, shape):
    two = TILE_SHAPES[value_of(shape)][1] == 2
    partials = _two_vector_pair if two else _four_vector_pair
    return lambda w, v, r, u, shape: partials(w, v, r, u, shape_width(shape))


@njit(inline="always", **_FLAGS)
def _four_vector_pair(w, v, r, u, W):
    """``v[r:r + 2] @ w[:, u:u + 4 * lanes]`` for two rows as two tuples of four vectors, each
    the sum of :data:`..config.TWO_ROW_PARTIALS` partial sums over the halves of ``k`` (the first
    takes the term left over) added as ``p0 + p1``, or one chain; each load of ``w`` feeds both
    rows. Each partial sum is one FMA per ``k`` in order."""
    depth = w.shape[0]
    half = depth // TWO_ROW_PARTIALS
    a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = vzero(w, W)  # row r, first and second half
    c0 = c1 = c2 = c3 = d0 = d1 = d2 = d3 = vzero(w, W)  # row r + 1
    for k in range(half):
        w0, w1 = vload_at(w, k, u, 0, W), vload_at(w, k, u, 1, W)
        w2, w3 = vload_at(w, k, u, 2, W), vload_at(w, k, u, 3, W)
        x, y = vbroadcast(v, r, k, W), vbroadcast(v, r + 1, k, W)
        a0, a1, a2, a3 = vfma(x, w0, a0), vfma(x, w1, a1), vfma(x, w2, a2), vfma(x, w3, a3)
        c0, c1, c2, c3 = vfma(y, w0, c0), vfma(y, w1, c1), vfma(y, w2, c2), vfma(y, w3, c3)
        if TWO_ROW_PARTIALS == 2:
            j = half + k
            w0, w1 = vload_at(w, j, u, 0, W), vload_at(w, j, u, 1, W)
            w2, w3 = vload_at(w, j, u, 2, W), vload_at(w, j, u, 3, W)
            x, y = vbroadcast(v, r, j, W), vbroadcast(v, r + 1, j, W)
            b0, b1, b2, b3 = vfma(x, w0, b0), vfma(x, w1, b1), vfma(x, w2, b2), vfma(x, w3, b3)
            d0, d1, d2, d3 = vfma(y, w0, d0), vfma(y, w1, d1), vfma(y, w2, d2), vfma(y, w3, d3)
    for k in range(TWO_ROW_PARTIALS * half, depth):
        w0, w1 = vload_at(w, k, u, 0, W), vload_at(w, k, u, 1, W)
        w2, w3 = vload_at(w, k, u, 2, W), vload_at(w, k, u, 3, W)
        x, y = vbroadcast(v, r, k, W), vbroadcast(v, r + 1, k, W)
        a0, a1, a2, a3 = vfma(x, w0, a0), vfma(x, w1, a1), vfma(x, w2, a2), vfma(x, w3, a3)
        c0, c1, c2, c3 = vfma(y, w0, c0), vfma(y, w1, c1), vfma(y, w2, c2), vfma(y, w3, c3)
    if TWO_ROW_PARTIALS == 2:
        return ((vadd(a0, b0), vadd(a1, b1), vadd(a2, b2), vadd(a3, b3)),
                (vadd(c0, d0), vadd(c1, d1), vadd(c2, d2), vadd(c3, d3)))
    return (a0, a1, a2, a3), (c0, c1, c2, c3)


@njit(inline="always", **_FLAGS)
def _pair_term2(w, v, r, j, u, s0, s1, t0, t1, W):
    """``(s0, s1)`` plus ``v[r, j]`` and ``(t0, t1)`` plus ``v[r + 1, j]`` times the two vectors
    ``w[j, u:u + 2 * lanes]`` (loaded once for both rows)."""
    w0, w1 = vload_at(w, j, u, 0, W), vload_at(w, j, u, 1, W)
    x, y = vbroadcast(v, r, j, W), vbroadcast(v, r + 1, j, W)
    return vfma(x, w0, s0), vfma(x, w1, s1), vfma(y, w0, t0), vfma(y, w1, t1)


@njit(inline="always", **_FLAGS)
def _two_vector_pair(w, v, r, u, W):
    """``v[r:r + 2] @ w[:, u:u + 2 * lanes]`` for two rows as two tuples of two vectors, each the
    sum of twice :data:`..config.TWO_ROW_PARTIALS` partial sums (the accumulators of
    :func:`_four_vector_pair`) over the quarters (or halves) of ``k``, the first taking the terms
    left over, added as ``(p0 + p1) + (p2 + p3)`` (or ``p0 + p1``). Each partial sum is one FMA
    per ``k`` in order."""
    depth = w.shape[0]
    partials = 2 * TWO_ROW_PARTIALS
    q = depth // partials
    a0 = a1 = b0 = b1 = c0 = c1 = d0 = d1 = vzero(w, W)  # row r: partial sums a, b, c, d
    e0 = e1 = f0 = f1 = g0 = g1 = h0 = h1 = vzero(w, W)  # row r + 1: e, f, g, h
    for k in range(q):
        a0, a1, e0, e1 = _pair_term2(w, v, r, k, u, a0, a1, e0, e1, W)
        b0, b1, f0, f1 = _pair_term2(w, v, r, q + k, u, b0, b1, f0, f1, W)
        if partials == 4:
            c0, c1, g0, g1 = _pair_term2(w, v, r, 2 * q + k, u, c0, c1, g0, g1, W)
            d0, d1, h0, h1 = _pair_term2(w, v, r, 3 * q + k, u, d0, d1, h0, h1, W)
    for k in range(partials * q, depth):
        a0, a1, e0, e1 = _pair_term2(w, v, r, k, u, a0, a1, e0, e1, W)
    if partials == 4:
        return ((vadd(vadd(a0, b0), vadd(c0, d0)), vadd(vadd(a1, b1), vadd(c1, d1))),
                (vadd(vadd(e0, f0), vadd(g0, h0)), vadd(vadd(e1, f1), vadd(g1, h1))))
    return (vadd(a0, b0), vadd(a1, b1)), (vadd(e0, f0), vadd(e1, f1))


def store_vectors(z, r, u, sums):
    """``z[r, u:u + V * lanes] = sums``, the ``V`` (two or four) vectors of a one-row tile."""


@overload(store_vectors, inline="always", jit_options=options.OVERLOAD_CACHED)
def _store_vectors(z, r, u, sums):
    lanes = sums[0].lanes
    if len(sums) == 2:
        def two(z, r, u, sums):
            vstore(z, r, u, sums[0])
            vstore(z, r, u + lanes, sums[1])
        return two

    def four(z, r, u, sums):
        vstore(z, r, u, sums[0])
        vstore(z, r, u + lanes, sums[1])
        vstore(z, r, u + 2 * lanes, sums[2])
        vstore(z, r, u + 3 * lanes, sums[3])
    return four


def shape_vectors(shape):
    """Vectors of units of a tile of ``TILE_SHAPES[shape]`` (``shape`` a static choice), a
    constant in a jitted function."""


@overload(shape_vectors, inline="always", jit_options=options.OVERLOAD_CACHED)
def _shape_vectors(shape):
    vectors = TILE_SHAPES[value_of(shape)][1]
    return lambda shape: vectors


def tile_shape(rows: int, units: int, itemsize: int, latency_bound: bool = False) -> int:
    """Index into :data:`TILE_SHAPES` for a (rows, units) product, of the shapes with vectors no
    wider than the CPU's (:data:`..config.VECTOR_BYTES`). For the one- and two-row kernels
    (``latency_bound``: :func:`.rows.one_row`, :func:`.rows.two_rows`, whose steps keep their
    sums in registers through the activation), the one-row shape with the fewest vectors of
    units: their steps are bound by the FMAs' issue and latency, one instruction a vector
    whatever its width (1,1000,8,48 float32, AVX-512: 56 ns a step with four 64-byte vectors, 80
    with three tiles of two 32-byte ones). Otherwise, a one-row shape of four vectors for one
    row (two-vector tiles ran the rows path's training steps 1.02x slower at 1,2000,8,16), or
    one of several rows (which give the same bits): the one with the least padded work, rows
    rounded up to the tile's rows, units to its vectors, times
    :data:`..config.WIDE_VECTOR_COST` for 64-byte vectors. Ties: wider vectors, then more rows,
    which share each load of ``w``, then more vectors, which share each broadcast of ``v``."""
    return _tile_shape(rows, units, itemsize, latency_bound, config.WIDE_VECTOR_COST)


@functools.lru_cache(maxsize=1024)
def _tile_shape(rows: int, units: int, itemsize: int, latency_bound: bool, wide_cost: float) -> int:
    def order(i: int) -> tuple:
        shape_rows, vectors, size = TILE_SHAPES[i]
        lanes = size // itemsize
        padded = -(-units // (vectors * lanes)) * vectors * lanes
        if latency_bound:
            cost = padded / lanes
        else:
            cost = -(-rows // shape_rows) * shape_rows * padded * (wide_cost if size > BYTES[0] else 1.0)
        return cost, -size, -shape_rows, -vectors

    def allowed(i: int) -> bool:
        shape_rows, _, size = TILE_SHAPES[i]
        if size > VECTOR_BYTES or (shape_rows == 1) != (rows == 1):
            return False
        return latency_bound or rows_path_shape(i)
    return min((i for i in range(len(TILE_SHAPES)) if allowed(i)), key=order)


def rows_path_shape(shape: int) -> bool:
    """Whether the rows path (:func:`tile_shape` without ``latency_bound``) may take
    ``TILE_SHAPES[shape]``: one of several rows, or one row of four vectors."""
    shape_rows, vectors, _ = TILE_SHAPES[shape]
    return shape_rows > 1 or vectors == 4


def one_row_shape(shape: int) -> bool:
    """Whether ``TILE_SHAPES[shape]`` is a one-row shape."""
    return TILE_SHAPES[shape][0] == 1


def padded_units(units: int, shape: int, itemsize: int) -> int:
    """``units`` rounded up to whole tiles of ``TILE_SHAPES[shape]``."""
    _, vectors, size = TILE_SHAPES[shape]
    step = vectors * (size // itemsize)
    return -(-units // step) * step


def shape_width(shape):
    """The static vector width of tiles of ``TILE_SHAPES[shape]`` (``shape`` a static choice), in
    a jitted function."""


@overload(shape_width, inline="always", jit_options=options.OVERLOAD_CACHED)
def _shape_width(shape):
    if TILE_SHAPES[value_of(shape)][2] == BYTES[0]:
        return lambda shape: (None,)
    return lambda shape: (None, None)


@njit(inline="always", **_FLAGS)
def wide_tile(w, v, z, r, u, k0, k1, T, W):
    """``z[r:r + 4, u:u + 3 * lanes] = v[r:r + 4] @ w[:, u:u + 3 * lanes]``: twelve vector
    accumulators, so each ``k`` is three loads of ``w`` and four broadcasts of ``v`` for twelve
    FMAs (:func:`tile`: six for eight), and twelve independent chains of FMAs hide the FMA
    latency that eight do not. ``k0``, ``k1`` and ``T`` as in :func:`tile`. Each element is one
    FMA per ``k`` in order from zero, as in :func:`tile`, so the results are the same bits. (Six
    rows by two vectors, also twelve accumulators, compiled to spills in float64: 20 against 45
    GFLOP/s.)"""
    tile_4x3(w, u, v, r, z, r, u, k0, k1, T, W)


@njit(inline="always", **_FLAGS)
def tile_4x3(w, wu, v, r, z, zr, zu, k0, k1, T, W):
    """``z[zr:zr + 4, zu:zu + 3 * lanes] = v[r:r + 4] @ w[k0:k1, wu:wu + 3 * lanes]``, added to
    ``z`` from ``k0 > 0`` on: the twelve accumulators of :func:`wide_tile` and
    :func:`panel_tile`, with the output's rows and columns given apart from ``v``'s and ``w``'s."""
    lanes = lane_count(W, w.itemsize)
    c0, c1, c2 = wu, wu + lanes, wu + 2 * lanes
    o0, o1, o2 = zu, zu + lanes, zu + 2 * lanes
    a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = d0 = d1 = d2 = d3 = vzero(w, W)
    if k0 > 0:
        a0, b0, d0 = vload(z, zr, o0, W), vload(z, zr, o1, W), vload(z, zr, o2, W)
        a1, b1, d1 = vload(z, zr + 1, o0, W), vload(z, zr + 1, o1, W), vload(z, zr + 1, o2, W)
        a2, b2, d2 = vload(z, zr + 2, o0, W), vload(z, zr + 2, o1, W), vload(z, zr + 2, o2, W)
        a3, b3, d3 = vload(z, zr + 3, o0, W), vload(z, zr + 3, o1, W), vload(z, zr + 3, o2, W)
    for k in range(k0, k1):
        w0, w1, w2 = vload(w, k, c0, W), vload(w, k, c1, W), vload(w, k, c2, W)
        x = vterm(v, k, r, T, W)
        a0, b0, d0 = vfma(x, w0, a0), vfma(x, w1, b0), vfma(x, w2, d0)
        x = vterm(v, k, r + 1, T, W)
        a1, b1, d1 = vfma(x, w0, a1), vfma(x, w1, b1), vfma(x, w2, d1)
        x = vterm(v, k, r + 2, T, W)
        a2, b2, d2 = vfma(x, w0, a2), vfma(x, w1, b2), vfma(x, w2, d2)
        x = vterm(v, k, r + 3, T, W)
        a3, b3, d3 = vfma(x, w0, a3), vfma(x, w1, b3), vfma(x, w2, d3)
    vstore(z, zr, o0, a0)
    vstore(z, zr, o1, b0)
    vstore(z, zr, o2, d0)
    vstore(z, zr + 1, o0, a1)
    vstore(z, zr + 1, o1, b1)
    vstore(z, zr + 1, o2, d1)
    vstore(z, zr + 2, o0, a2)
    vstore(z, zr + 2, o1, b2)
    vstore(z, zr + 2, o2, d2)
    vstore(z, zr + 3, o0, a3)
    vstore(z, zr + 3, o1, b3)
    vstore(z, zr + 3, o2, d3)


@njit(inline="always", **_FLAGS)
def tile_4x4(w, v, r, z, zr, zu, k1, T, W):
    """``z[zr:zr + 4, zu:zu + 4 * lanes] = v[r:r + 4] @ w[:k1, :4 * lanes]``: sixteen vector
    accumulators (with four vectors of ``w`` and a broadcast, 21 of the 32 AVX-512 registers;
    AVX2's 16 would spill), each ``k`` four loads of ``w`` and four broadcasts of ``v`` for
    sixteen FMAs. Each element is one FMA per ``k`` in order from zero, as in :func:`tile`."""
    lanes = lane_count(W, w.itemsize)
    c1, c2, c3 = lanes, 2 * lanes, 3 * lanes
    a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = vzero(w, W)
    d0 = d1 = d2 = d3 = e0 = e1 = e2 = e3 = vzero(w, W)
    for k in range(k1):
        w0, w1, w2, w3 = vload(w, k, 0, W), vload(w, k, c1, W), vload(w, k, c2, W), vload(w, k, c3, W)
        x = vterm(v, k, r, T, W)
        a0, b0, d0, e0 = vfma(x, w0, a0), vfma(x, w1, b0), vfma(x, w2, d0), vfma(x, w3, e0)
        x = vterm(v, k, r + 1, T, W)
        a1, b1, d1, e1 = vfma(x, w0, a1), vfma(x, w1, b1), vfma(x, w2, d1), vfma(x, w3, e1)
        x = vterm(v, k, r + 2, T, W)
        a2, b2, d2, e2 = vfma(x, w0, a2), vfma(x, w1, b2), vfma(x, w2, d2), vfma(x, w3, e2)
        x = vterm(v, k, r + 3, T, W)
        a3, b3, d3, e3 = vfma(x, w0, a3), vfma(x, w1, b3), vfma(x, w2, d3), vfma(x, w3, e3)
    o1, o2, o3 = zu + c1, zu + c2, zu + c3
    vstore(z, zr, zu, a0)
    vstore(z, zr, o1, b0)
    vstore(z, zr, o2, d0)
    vstore(z, zr, o3, e0)
    vstore(z, zr + 1, zu, a1)
    vstore(z, zr + 1, o1, b1)
    vstore(z, zr + 1, o2, d1)
    vstore(z, zr + 1, o3, e1)
    vstore(z, zr + 2, zu, a2)
    vstore(z, zr + 2, o1, b2)
    vstore(z, zr + 2, o2, d2)
    vstore(z, zr + 2, o3, e2)
    vstore(z, zr + 3, zu, a3)
    vstore(z, zr + 3, o1, b3)
    vstore(z, zr + 3, o2, d3)
    vstore(z, zr + 3, o3, e3)


@njit(**options.INLINE_PLAIN)
def wide_columns(columns, lanes):
    """How many of ``columns`` (whole pairs of vectors of ``lanes``) :func:`wide_tile` s cover:
    the most whole triples of vectors that leave an even number of vectors for 4x2 tiles."""
    vectors = columns // lanes
    triples = vectors // 3
    if (vectors - 3 * triples) % 2:
        triples -= 1
    return 3 * triples * lanes


@njit(**_FLAGS)
def four_row_tiles(w, v, z, lo, hi, W):
    """``z[lo:hi] = v[lo:hi] @ w`` by :func:`wide_tile` s, the last columns by 4x2 :func:`tile` s:
    ``hi - lo`` a multiple of 4, ``z``'s width of whole pairs of vectors. Not inlined: its
    callers (:func:`tiled_product`, :func:`product`) share one compiled copy per dtype."""
    lanes = lane_count(W, w.itemsize)
    wide = wide_columns(z.shape[1], lanes)
    for u in range(0, wide, 3 * lanes):
        for r in range(lo, hi, 4):
            wide_tile(w, v, z, r, u, 0, w.shape[0], False, W)
    for u in range(wide, z.shape[1], 2 * lanes):
        for r in range(lo, hi, 4):
            tile(w, v, z, r, u, 4, 2, 0, w.shape[0], False, W)


@njit(inline="always", **_FLAGS)
def one_row_tiles(w, v, z, r, shape):
    """``z[r] = v[r] @ w`` for one row by :func:`row_partials` over each ``V`` vectors of units
    (the one-row shape ``TILE_SHAPES[shape]``). ``w`` (K, U), ``z`` (rows, U) C-contiguous, U
    whole tiles; ``v`` (rows, K), any strides. A step of one row is a chain of dependent steps: a
    single chain of FMAs per element would wait the FMA latency ``K`` times a step
    (1,2000,8,32 float32, interleaved: 46 -> 40 ns a step with :mod:`.rows`' one-row kernel)."""
    step = shape_vectors(shape) * lane_count(shape_width(shape), w.itemsize)
    for u in range(0, z.shape[1], step):
        store_vectors(z, r, u, row_partials(w, v, r, u, shape))


def tiled_product(w, v, z, shape):
    """``z = v @ w`` by tiles of ``TILE_SHAPES[shape]`` (``shape`` a static choice, see
    :mod:`.specialise`: only that shape's code compiles): ``w`` (K, U), ``v`` (rows, K), ``z``
    (rows, U), last axes contiguous, ``rows`` and ``U`` whole tiles (callers pad). A row's result
    does not depend on the other rows; the two shapes of several rows give the same bits (each
    element one FMA per ``k`` in order); the one-row shapes' partial sums (:func:`row_partials`)
    differ from them by rounding."""


@overload(tiled_product, jit_options=_FLAGS)
def _tiled_product(w, v, z, shape):
    rows = TILE_SHAPES[value_of(shape)][0]
    if rows == 4:
        def four_rows(w, v, z, shape):
            four_row_tiles(w, v, z, 0, z.shape[0], shape_width(shape))
        return four_rows
    if rows == 2:
        def two_rows(w, v, z, shape):
            W = shape_width(shape)
            for u in range(0, z.shape[1], 4 * lane_count(W, w.itemsize)):
                for r in range(0, z.shape[0], 2):
                    tile(w, v, z, r, u, 2, 4, 0, w.shape[0], False, W)
        return two_rows

    def one_row(w, v, z, shape):
        for r in range(z.shape[0]):
            one_row_tiles(w, v, z, r, shape)
    return one_row


@njit(**options.SERIAL)
def fma_rows(a, b, c, lo, hi):
    """``c[lo:hi] = a[lo:hi] @ b`` one FMA per ``k`` in order from zero, as the tiles sum (the
    same bits: compiled without reassociation for that): the few rows after the last whole
    tile of a product. ``a`` (M, K), ``b`` (K, N), ``c`` (M, N)."""
    for i in range(lo, hi):
        ci = c[i]
        for u in range(ci.shape[0]):
            ci[u] = 0
        for k in range(a.shape[1]):
            aik, bk = a[i, k], b[k]
            for u in range(ci.shape[0]):
                ci[u] += aik * bk[u]


@njit(**_FLAGS)
def product(a, b, c, W):
    """``c[:M] = a @ b`` on the calling thread by :func:`four_row_tiles`: ``a`` (M, K), ``b``
    (K, N) with ``N`` whole pairs of vectors, ``c`` (M', N) with ``M'`` >= ``M``; last axes
    contiguous. The input projection of the CPU recurrences' runs of rows."""
    rows = a.shape[0]
    whole = rows // PRODUCT_TILE_ROWS * PRODUCT_TILE_ROWS
    for m0 in range(0, whole, PRODUCT_ROW_BLOCK):
        four_row_tiles(b, a, c, m0, min(m0 + PRODUCT_ROW_BLOCK, whole), W)
    fma_rows(a, b, c, whole, rows)
