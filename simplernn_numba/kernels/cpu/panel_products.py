"""Panel-packed products: the weights of the panels path (:mod:`.panels`) cut into column panels.

:func:`panel_tile` and :func:`packed_product` are the four-row tile of :mod:`.products` (or, with
32 vector registers, a sixteen-accumulator 4x4 one) on weights packed into column panels
(:func:`panels`) and rows packed by quads, for weights too large for L2 or many units.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..config import PANEL_VECTORS, VECTOR_BYTES
from . import options
from .products import tile_4x3, tile_4x4
from .simd import widest

_FLAGS = options.PRODUCTS


def panel_width(itemsize: int) -> int:
    """Columns of one panel: :data:`PANEL_VECTORS` vectors."""
    return PANEL_VECTORS * (VECTOR_BYTES // itemsize)


def panels(w: np.ndarray) -> tuple[np.ndarray, ...]:
    """``w`` (K, N) cut into column panels of :func:`panel_width` columns (the last may be
    narrower): each is the (K, width) block :func:`panel_tile` reads from top to bottom, so that
    a tile's weights are contiguous whatever N (rows of a wide ``w``, 2 KB apart at 512 float32
    columns, fall into a few L1 sets and evict each other)."""
    width = panel_width(w.itemsize)
    return tuple(w[:, j:j + width] for j in range(0, w.shape[1], width))


@njit(inline="always", **_FLAGS)
def panel_tile(wp, v, z, r, zr, u, T):
    """``z[zr:zr + 4, u:u + width] = v[r:r + 4] @ wp``, ``wp`` one (K, width) panel of
    :func:`panels`: :func:`wide_tile`'s twelve accumulators and order of FMAs (each element
    one FMA per ``k`` in order from zero), with the panel read contiguously and the output
    rows and columns apart from ``v``'s rows and the panel's. With ``T`` (literal) ``v`` is
    given transposed, (K, rows): a quad of rows packed as (K, 4), one 16-byte load a ``k``.
    Panels of four vectors (:data:`..config.PANEL_VECTORS`) take :func:`tile_4x4` instead."""
    if PANEL_VECTORS == 4:
        tile_4x4(wp, v, r, z, zr, u, wp.shape[0], T, widest())
    else:
        tile_4x3(wp, 0, v, r, z, zr, u, 0, wp.shape[0], T, widest())


@njit(inline="always", **_FLAGS)
def pack_rows(a, lo, hi, packed):
    """``packed[q, k, i] = a[lo + 4 * q + i, k]`` for the rows ``lo:hi`` of ``a`` (M, K), zeros
    for the places past ``hi``: quads of rows as (K, 4), the operand of :func:`packed_product`."""
    depth = a.shape[1]
    for q in range((hi - lo + 3) // 4):
        quad = packed[q]
        for i in range(4):
            r = lo + 4 * q + i
            if r < hi:
                row = a[r]
                for k in range(depth):
                    quad[k, i] = row[k]
            else:
                for k in range(depth):
                    quad[k, i] = 0


@njit(nogil=True, **_FLAGS)
def packed_product(packed, quads, wp, count, z):
    """``z[:4 * quads] = rows @ w`` for the first ``quads`` quads of rows packed into ``packed``
    (quads', K, 4), ``w`` (K, N) given as its ``count`` zero-padded panels stacked into ``wp``
    (count * K, width); ``z`` has ``count * width`` columns. Each panel passes over every quad
    before the next (the quads stay in L1). Not inlined: the panels path's input projection and
    its forward and backward steps share this one compiled tile."""
    depth, width = wp.shape[0] // count, wp.shape[1]
    for j in range(count):
        w = wp[j * depth:(j + 1) * depth]
        for q in range(quads):
            panel_tile(w, packed[q], z, 0, 4 * q, j * width, True)
