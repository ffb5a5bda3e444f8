"""The register-tiled products and the backward pass's BLAS-free products
(kernels/cpu/products.py, kernels/cpu/simd.py) against NumPy."""

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from simplernn_numba.kernels import config, cpu
from simplernn_numba.kernels.config import VECTOR_BYTES
from simplernn_numba.kernels.cpu import backward_pass, panel_products
from simplernn_numba.kernels.cpu import products as _products
from simplernn_numba.kernels.cpu.gradient_products import gradient_products
from simplernn_numba.kernels.cpu.products import TILE_SHAPES
from simplernn_numba.kernels.cpu.simd import width as width_of
from simplernn_numba.kernels.cpu.specialise import static


@njit
def _tiled(w, v, z, shape):
    _products.tiled_product(w, v, z, shape)


def tiled_product(w, v, z, shape):
    """:func:`._products.tiled_product` (an overload, compiled where it is called) from Python."""
    _tiled(w, v, z, static(shape))


def _problem(rng, rows, features, units, dtype):
    x, prev, dz = (rng.standard_normal((rows, n)).astype(dtype) for n in (features, units, units))
    return x, prev, dz, rng.standard_normal((features, units)).astype(dtype)


def _lanes(dtype, vector_bytes=VECTOR_BYTES):
    return vector_bytes // np.dtype(dtype).itemsize


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_tile_shape_gives_the_same_bits_and_matches_numpy(rng, dtype):
    lanes = _lanes(dtype, 64)
    width = 12 * lanes  # three fours of 64-byte vectors, six of 32-byte ones
    v = rng.standard_normal((8, 37)).astype(dtype)
    w = rng.standard_normal((37, width)).astype(dtype)
    results = {}
    for shape in range(len(TILE_SHAPES)):
        z = np.full((8, width), np.nan, dtype)
        tiled_product(w, v, z, shape)
        results[TILE_SHAPES[shape]] = z
        np.testing.assert_allclose(z, v.astype(np.float64) @ w, rtol=1e-5 if dtype == "float32"
                                   else 1e-12, atol=1e-5 if dtype == "float32" else 1e-12)
    # tiles of several rows, of either width: one FMA per term in order, so the shape does not
    # change a bit
    first = results[(4, 2, 64)]
    for rows, vectors, size in TILE_SHAPES:
        if rows > 1:
            np.testing.assert_array_equal(results[rows, vectors, size], first)
    # one row: ONE_ROW_PARTIALS partial sums over k (K = 37: terms left over), the same bits at
    # either width of four vectors and by row; the rounding differs from one chain's, and two
    # vectors' twice as many partial sums from four's
    one_row = results[(1, 4, 64)]
    np.testing.assert_array_equal(results[(1, 4, 32)], one_row)
    assert not np.array_equal(one_row, first)
    assert not np.array_equal(results[(1, 2, 64)], one_row)
    np.testing.assert_array_equal(results[(1, 2, 32)], results[(1, 2, 64)])
    for shape in ((1, 4, 64), (1, 2, 64)):
        single = np.empty((1, width), dtype)
        tiled_product(w, v[3:4], single, TILE_SHAPES.index(shape))
        np.testing.assert_array_equal(single[0], results[shape][3])


def test_vector_loads_need_c_contiguous_arrays():
    from numba import njit

    from simplernn_numba.kernels.cpu.simd import vbroadcast, vload, vstore

    @njit
    def copy(a, out):
        vstore(out, 0, 0, vload(a, 0, 0, (None,)))  # 32-byte vectors

    a, out = np.arange(16, dtype=np.float32).reshape(2, 8), np.zeros((1, 8), np.float32)
    copy(a, out)
    np.testing.assert_array_equal(out[0], a[0])
    with pytest.raises(TypingError, match="C-contiguous"):  # lanes would not be consecutive
        copy(np.asfortranarray(a), out)
    # a broadcast reads one element: any layout, from the element's own address

    @njit
    def splat(a, out):
        vstore(out, 0, 0, vbroadcast(a, 1, 3, (None,)))

    splat(a[:, ::2], out)
    np.testing.assert_array_equal(out[0], np.full(8, a[1, 6]))


def test_tile_shape_picks_the_least_padded_work():
    def shape(rows, units, itemsize, latency_bound=False):
        return TILE_SHAPES[_products.tile_shape(rows, units, itemsize, latency_bound)]
    wide = 64 if VECTOR_BYTES == 64 else 32
    with config.override(WIDE_VECTOR_COST=1.0):  # 64-byte vectors where the padding is the same
        assert shape(1, 64, 4) == (1, 4, wide)
        assert shape(2, 32, 4) == (2, 4, 32)  # (2, 4, 64) pads to 64 units
        assert shape(8, 128, 4) == (4, 2, wide)
        assert shape(16, 16, 4) == (4, 2, 32)  # ties at 32-byte vectors: more rows
        assert shape(1, 24, 4) == (1, 4, 32)  # the rows path: tiles of four vectors for one row
    assert shape(3, 19, 4) == (4, 2, wide)  # several rows: never a one-row shape
    if VECTOR_BYTES == 64:
        assert shape(8, 48, 4) == (4, 2, 32)  # 48 units, against 64 at 0.8 each
        assert shape(8, 32, 4) == (4, 2, 64)  # the same padding: the wide vectors
        with config.override(WIDE_VECTOR_COST=1.5):
            assert shape(8, 32, 4) == (4, 2, 32)
    # the one- and two-row kernels: the fewest vectors (ties: the widest, then four a tile)
    assert shape(1, 48, 4, True) == ((1, 4, 64) if VECTOR_BYTES == 64 else (1, 2, 32))  # 4 or 6
    assert shape(1, 32, 4, True) == ((1, 2, 64) if VECTOR_BYTES == 64 else (1, 4, 32))
    assert shape(1, 16, 4, True) == ((1, 2, 64) if VECTOR_BYTES == 64 else (1, 2, 32))
    if VECTOR_BYTES == 64:
        assert shape(1, 8, 4, True) == (1, 2, 64)  # two vectors either width: the wider
        assert shape(1, 16, 8, True) == (1, 2, 64)
        assert shape(1, 96, 4, True) == (1, 2, 64)  # three tiles of two, against two of four
        assert shape(1, 64, 4, True) == (1, 4, 64)  # four vectors either way: four a broadcast
    assert _products.padded_units(42, TILE_SHAPES.index((4, 2, 32)), 8) == 48
    assert _products.padded_units(64, TILE_SHAPES.index((1, 4, 32)), 4) == 64
    assert _products.padded_units(33, TILE_SHAPES.index((1, 4, 32)), 4) == 64
    assert _products.padded_units(33, TILE_SHAPES.index((4, 2, 64)), 4) == 64
    assert _products.padded_units(33, TILE_SHAPES.index((1, 4, 64)), 4) == 64


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rows", [0, 1, 4, 6, 9, 130])
@pytest.mark.parametrize("vectors", [2, 4, 6, 8])
@pytest.mark.parametrize("vector_bytes", [32, 64])
def test_product_matches_numpy_with_any_row_count(rng, dtype, rows, vectors, vector_bytes):
    """``product`` (the recurrence runs' input projection): rows past a multiple of 4 summed one
    FMA per term in order, columns by tiles of three vectors and the rest (two or four vectors)
    by tiles of two; the output's padding rows are scratch, the rows asked for are exact and the
    same bits as the recurrence's two-row tiles give (a different tile code path)."""
    lanes = _lanes(dtype, vector_bytes)
    width = vectors * lanes
    a = rng.standard_normal((rows, 37)).astype(dtype)
    b = rng.standard_normal((37, width)).astype(dtype)
    tile = config.PRODUCT_TILE_ROWS
    c = np.full((-(-rows // tile) * tile, width), np.nan, dtype)
    _products.product(a, b, c, width_of(vector_bytes))
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(c[:rows], a.astype(np.float64) @ b, **tol)
    # against the two-row tiles (eight accumulators, :func:`tile`), b padded to their width
    padded = np.concatenate((b, np.zeros((37, -vectors % 4 * lanes), dtype)), axis=1)
    tiled = np.empty((-(-rows // 2) * 2, padded.shape[1]), dtype)
    two_rows = TILE_SHAPES.index((2, 4, vector_bytes))
    tiled_product(padded, np.concatenate((a, np.zeros((len(tiled) - rows, 37), dtype))), tiled,
                  two_rows)
    np.testing.assert_array_equal(c[:rows], tiled[:rows, :width])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rows,features,units", [(1, 1, 1), (7, 5, 6), (33, 3, 17), (64, 40, 8), (0, 3, 5),
                                                 (600, 40, 64), (40, 40, 136)])
def test_gradient_products_match_numpy(rng, dtype, rows, features, units):
    # (600, 40, 64): K = rows in many blocks in the weight gradients, with columns in 4x3 and 4x2
    # tiles; (40, 40, 136): K = units past one block in the input gradient
    x, prev, dz, kernel = _problem(rng, rows, features, units, dtype)
    # float32 sums of ``rows`` terms: past 64 rows the rounding grows with the square root of
    # their number (600 rows: 6e-5 from the float64 products, NumPy's float32 4e-5)
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == "float64" else dict(
        rtol=1e-5, atol=1e-5 * max(1.0, rows / 64) ** 0.5)
    for chunks in (1, 2, 3, 5):
        d_inputs, d_weights, d_bias = gradient_products(x, prev, dz, kernel, chunks)
        assert d_inputs.dtype == d_weights.dtype == d_bias.dtype == np.dtype(dtype)
        np.testing.assert_allclose(d_inputs, dz @ kernel.T, **tol)
        np.testing.assert_allclose(d_weights[:features], x.T @ dz, **tol)
        np.testing.assert_allclose(d_weights[features:], prev.T @ dz, **tol)
        np.testing.assert_allclose(d_bias, dz.sum(axis=0), **tol)


def test_gradient_products_do_not_depend_on_the_thread_split(rng):
    x, prev, dz, kernel = _problem(rng, 301, 13, 22, "float32")
    first = gradient_products(x, prev, dz, kernel, 1)
    for chunks in (2, 3, 8):
        for a, b in zip(first, gradient_products(x, prev, dz, kernel, chunks)):
            assert np.array_equal(a, b)


def test_gradient_products_propagate_nan(rng):
    x, prev, dz, kernel = _problem(rng, 9, 4, 5, "float32")
    dz[3, 2] = np.nan
    d_inputs, d_weights, d_bias = gradient_products(x, prev, dz, kernel, 2)
    assert np.isnan(d_inputs[3]).all() and np.isfinite(np.delete(d_inputs, 3, axis=0)).all()
    assert np.isnan(d_weights[:, 2]).all() and np.isfinite(np.delete(d_weights, 2, axis=1)).all()
    assert np.isnan(d_bias[2]) and np.isfinite(np.delete(d_bias, 2)).all()


def test_backward_uses_the_products_on_the_per_row_path_only(monkeypatch, rng):
    """The per-row paths' weight and input gradients: BLAS while OpenBLAS would run each product
    on the calling thread (``BLAS_SERIAL_MACS``), else the Numba products, on the calling thread
    for little work and on every thread above ``BACKWARD_SERIAL_WORK``; the per-step GEMM path
    always BLAS. The same gradients every way, the Numba products bit for bit on any split."""
    chunks = []
    monkeypatch.setattr(backward_pass, "gradient_products",
                        lambda *args: chunks.append(args[4]) or gradient_products(*args))
    monkeypatch.setattr(backward_pass.numba, "get_num_threads", lambda: 2)
    x = rng.standard_normal((3, 4, 5))
    kernel, recurrent = rng.standard_normal((5, 6)), rng.standard_normal((6, 6)) * 0.3
    bias, h0 = rng.standard_normal(6), np.zeros((3, 6))
    outputs, _ = cpu.forward(x, kernel, recurrent, bias, h0)
    d_outputs = rng.standard_normal(outputs.shape)
    blas = cpu.backward(x, kernel, recurrent, bias, h0, outputs, d_outputs)
    assert chunks == []
    with config.override(BLAS_SERIAL_MACS=0):
        serial = cpu.backward(x, kernel, recurrent, bias, h0, outputs, d_outputs)
        with config.override(BACKWARD_SERIAL_WORK=0):
            parallel = cpu.backward(x, kernel, recurrent, bias, h0, outputs, d_outputs)
        assert chunks == [1, 2]  # small work on the calling thread, else on every thread
        with config.override(ROWS_WEIGHT_BYTES=0):  # per-step GEMM path: BLAS products
            gemm = cpu.backward(x, kernel, recurrent, bias, h0, outputs, d_outputs)
    assert chunks == [1, 2]
    for key in ("inputs", "kernel", "recurrent_kernel", "initial_state", "bias"):
        assert np.array_equal(serial[key], parallel[key]), key
        np.testing.assert_allclose(gemm[key], serial[key], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(blas[key], serial[key], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("rows,depth,columns", [(1, 1, 1), (7, 5, 30), (53, 37, 48), (100, 16, 13)])
def test_packed_product_matches_numpy_and_the_tiles(rng, dtype, rows, depth, columns):
    """Rows packed by quads (the last quad partly zeros), columns past whole panels, K = 1; the
    same bits as the four-row tiles (one FMA per term, in order)."""
    a = rng.standard_normal((rows, depth)).astype(dtype)
    w = rng.standard_normal((depth, columns)).astype(dtype)
    width = panel_products.panel_width(a.itemsize)
    parts = panel_products.panels(w)
    assert [p.shape for p in parts] == [(depth, min(width, columns - j)) for j in range(0, columns, width)]
    wp = cpu.prepared_weights(w, np.empty((0, columns), dtype), "panels", width)
    assert wp.shape == (len(parts) * depth, width) and wp.ctypes.data % 64 == 0
    quads = -(-rows // 4)
    packed = np.zeros((quads * 4, depth), dtype)
    packed[:rows] = a
    packed = np.ascontiguousarray(packed.reshape(quads, 4, depth).transpose(0, 2, 1))
    z = np.full((4 * quads, len(parts) * width), np.nan, dtype)
    panel_products.packed_product(packed, quads, wp, len(parts), z)
    out = z[:rows, :columns]
    np.testing.assert_allclose(out, a.astype(np.float64) @ w, rtol=1e-5 if dtype == "float32"
                               else 1e-12, atol=1e-5 if dtype == "float32" else 1e-12)
    tiled = np.empty((4 * quads, 2 * width), dtype)  # two panels: whole 4x2 tiles
    padded_w = np.zeros((depth, 2 * width), dtype)
    padded_w[:, :min(columns, 2 * width)] = w[:, :2 * width]
    padded_a = np.zeros((tiled.shape[0], depth), dtype)
    padded_a[:rows] = a
    tiled_product(padded_w, padded_a, tiled, TILE_SHAPES.index((4, 2, VECTOR_BYTES)))
    n = min(columns, 2 * width)
    np.testing.assert_array_equal(out[:, :n], tiled[:rows, :n])


@njit(cache=True)
def _panel_tiles(w, v, z3, z4, width):
    """Both panel tiles on one quad of rows given transposed (K, 4), ``w`` (K, 4 vectors)."""
    _products.tile_4x3(w, 0, v, 0, z3, 0, 0, 0, w.shape[0], True, width)
    _products.tile_4x4(w, v, 0, z4, 0, 0, w.shape[0], True, width)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("vector_bytes", [32, 64])
def test_both_panel_tiles_give_the_four_row_tiles_bits(rng, dtype, vector_bytes):
    """The 4x3 and 4x4 panel tiles (one or the other compiled, by ``PANEL_VECTORS``), each
    element one FMA per term in order: the bits of the 4x2 tiles, at either vector width."""
    lanes = vector_bytes // np.dtype(dtype).itemsize
    depth = 37
    w = rng.standard_normal((depth, 4 * lanes)).astype(dtype)
    a = rng.standard_normal((4, depth)).astype(dtype)
    z3, z4 = np.full((4, 3 * lanes), np.nan, dtype), np.full((4, 4 * lanes), np.nan, dtype)
    _panel_tiles(w, np.ascontiguousarray(a.T), z3, z4, width_of(vector_bytes))
    tiled = np.empty((4, 4 * lanes), dtype)
    tiled_product(w, a, tiled, TILE_SHAPES.index((4, 2, vector_bytes)))
    np.testing.assert_array_equal(z4, tiled)
    np.testing.assert_array_equal(z3, tiled[:, :3 * lanes])
    tol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(z4, a.astype(np.float64) @ w, rtol=tol, atol=tol)
