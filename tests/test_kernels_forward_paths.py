"""Every code path of the CPU forward kernel against the NumPy reference.

Small problems normally take the serial, fused path; these tests force the
parallel path (threads over batch rows), the BLAS-projection path (large
weights), the large-kernel paths (recurrent kernel beyond L2: packed panels, or
with a mask or recurrent dropout one BLAS GEMM per step), the
batch-as-vector-lanes path (few units) and the cached prepared weights.
"""

import numba
import numpy as np
import pytest
from cases import make_problem
from conftest import tolerance

from simplernn_numba import functional
from simplernn_numba.kernels import cpu, reference


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("path", ["rows", "fused", "lanes", "gemm"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch,masked", [(1, True), (5, True), (5, False)])
def test_paths_match_reference(rng, monkeypatch, parallel, path, dtype, batch, masked):
    if path == "gemm" and parallel:
        pytest.skip("the per-step GEMM path has no thread split of its own (BLAS threads)")
    monkeypatch.setattr(cpu, "SERIAL_WORK", 0 if parallel else 1 << 62)
    monkeypatch.setattr(cpu, "FUSED_WEIGHT_BYTES", 0 if path in ("rows", "gemm") else 1 << 62)
    monkeypatch.setattr(cpu, "_ROWS_WEIGHT_BYTES", 0 if path == "gemm" else 1 << 62)
    monkeypatch.setattr(cpu, "GEMM_MIN_BATCH", 1)
    monkeypatch.setattr(cpu, "LANES_MAX_UNITS", 1 << 62 if path == "lanes" else 0)
    monkeypatch.setattr(cpu, "LANES_MIN_BATCH", 1)
    problem = make_problem(rng, batch=batch, steps=7, features=5, units=9, dtype=dtype,
                           masked=masked, dropout=True)
    rtol, atol = tolerance(dtype)
    for go_backwards in (False, True):
        for return_sequences in (False, True):
            kw = dict(go_backwards=go_backwards, return_sequences=return_sequences)
            out, state = cpu.forward(*problem.arrays(), **problem.options(), **kw)
            ref_out, ref_state = reference.forward(*problem.arrays(), **problem.options(), **kw)
            np.testing.assert_allclose(out, ref_out, rtol=rtol, atol=atol)
            np.testing.assert_allclose(state, ref_state, rtol=rtol, atol=atol)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_gemm_path_other_activations_match_reference(rng, monkeypatch, activation):
    """The per-step GEMM path finishes rows with the activation chosen at run time (tanh has a
    branch of its own in the row finish)."""
    monkeypatch.setattr(cpu, "FUSED_WEIGHT_BYTES", 0)
    monkeypatch.setattr(cpu, "_ROWS_WEIGHT_BYTES", 0)
    monkeypatch.setattr(cpu, "GEMM_MIN_BATCH", 1)
    problem = make_problem(rng, batch=5, steps=7, features=5, units=9, dtype=np.float64,
                           masked=True, dropout=True)
    for go_backwards in (False, True):
        for return_sequences in (False, True):
            kw = dict(go_backwards=go_backwards, return_sequences=return_sequences,
                      activation=activation)
            out, state = cpu.forward(*problem.arrays(), **problem.options(), **kw)
            ref_out, ref_state = reference.forward(*problem.arrays(), **problem.options(), **kw)
            np.testing.assert_allclose(out, ref_out, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(state, ref_state, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("batch,units", [(5, 9), (9, 30), (8, 24)])
def test_large_kernels_without_mask_or_recurrent_dropout_take_the_panels_path(
        rng, monkeypatch, dtype, activation, batch, units):
    """Large recurrent kernels without a mask or recurrent dropout run on packed panels (no
    BLAS): the reference's values, and the per-step BLAS path's (taken with a mask that masks
    nothing, or with recurrent dropout) to rounding. Batches and widths that are not whole quads
    of rows or whole panels (float32 panels are 24 units wide, float64 12), input dropout."""
    monkeypatch.setattr(cpu, "FUSED_WEIGHT_BYTES", 0)
    monkeypatch.setattr(cpu, "_ROWS_WEIGHT_BYTES", 0)
    monkeypatch.setattr(cpu, "GEMM_MIN_BATCH", 1)
    taken, gemm = [], []
    panels, blas = cpu._recurrence_panels, cpu._recurrence_gemm
    monkeypatch.setattr(cpu, "_recurrence_panels", lambda *a: taken.append(1) or panels(*a))
    monkeypatch.setattr(cpu, "_recurrence_gemm", lambda *a: gemm.append(1) or blas(*a))
    # weights scaled as the units grow, to keep the sums (and float32 rounding) as with 9 units
    problem = make_problem(rng, batch=batch, steps=7, features=5, units=units, dtype=dtype,
                           dropout=True, scale=0.4 * (9 / units) ** 0.5)
    x, kernel, recurrent, bias, h0 = problem.arrays()
    dropout = problem.options()["input_dropout"]
    rtol, atol = tolerance(dtype)
    every_step = np.ones((batch, 7), bool)
    for go_backwards in (False, True):
        for return_sequences in (False, True):
            kw = dict(go_backwards=go_backwards, return_sequences=return_sequences,
                      activation=activation, input_dropout=dropout)
            taken.clear(), gemm.clear()
            out, state = cpu.forward(x, kernel, recurrent, bias, h0, **kw)
            assert (taken, gemm) == ([1], [])
            blas_out, blas_state = cpu.forward(x, kernel, recurrent, bias, h0, mask=every_step, **kw)
            cpu.forward(x, kernel, recurrent, bias, h0, recurrent_dropout=np.ones_like(h0), **kw)
            assert (taken, gemm) == ([1], [1, 1])
            np.testing.assert_allclose(out, blas_out, rtol=rtol, atol=atol)
            np.testing.assert_allclose(state, blas_state, rtol=rtol, atol=atol)
            ref_out, ref_state = reference.forward(x, kernel, recurrent, bias, h0, **kw)
            np.testing.assert_allclose(out, ref_out, rtol=rtol, atol=atol)
            np.testing.assert_allclose(state, ref_state, rtol=rtol, atol=atol)
            assert out.flags.c_contiguous and state.flags.c_contiguous


def test_panels_path_is_chosen_from_64_units_and_for_large_kernels(rng, monkeypatch):
    """Default choice: panels for a batch of 8+ rows without a mask or recurrent dropout, from
    ``PANELS_MIN_UNITS`` units when the work reaches ``SERIAL_WORK``, or when the recurrent
    kernel exceeds ``_ROWS_WEIGHT_BYTES``; the per-row paths otherwise."""
    taken = []
    panels = cpu._recurrence_panels
    monkeypatch.setattr(cpu, "_recurrence_panels", lambda *a: taken.append(a[0].shape) or panels(*a))
    cases = [((8, 40, 8, 64), {}, True), ((8, 40, 8, 63), {}, False),  # 64 units, 1.5M MACs
             ((8, 20, 8, 64), {}, False),  # below SERIAL_WORK
             ((7, 40, 8, 64), {}, False), ((8, 40, 8, 64), {"mask": True}, False),
             ((8, 40, 8, 64), {"recurrent_dropout": True}, False),
             ((8, 2, 3, 190), {}, True)]  # 190 x 190 float64 > 256 KB: large, however little work
    for (batch, steps, features, units), extra, expected in cases:
        problem = make_problem(rng, batch=batch, steps=steps, features=features, units=units,
                               scale=0.1)  # float64: the variants most other tests compile
        kw = {}
        if "mask" in extra:
            kw["mask"] = np.ones((batch, steps), bool)
        if "recurrent_dropout" in extra:
            kw["recurrent_dropout"] = np.ones((batch, units))
        taken.clear()
        out, _ = cpu.forward(*problem.arrays(), **kw)
        assert bool(taken) == expected, (batch, steps, features, units, extra)
        ref, _ = reference.forward(*problem.arrays(), **kw)
        np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-12)


def test_panels_path_rows_do_not_depend_on_batch_or_threads(rng, monkeypatch):
    """A row's result on the panels path is the same bits whatever the other rows of its batch
    and however the batch is split into runs (each element one FMA per term, in order)."""
    monkeypatch.setattr(cpu, "FUSED_WEIGHT_BYTES", 0)
    monkeypatch.setattr(cpu, "_ROWS_WEIGHT_BYTES", 0)
    monkeypatch.setattr(cpu, "GEMM_MIN_BATCH", 1)
    problem = make_problem(rng, batch=11, steps=6, features=7, units=40, dtype=np.float32)
    x, kernel, recurrent, bias, h0 = problem.arrays()
    whole, whole_state = cpu.forward(x, kernel, recurrent, bias, h0)
    part, part_state = cpu.forward(x[6:], kernel, recurrent, bias, h0[6:])
    np.testing.assert_array_equal(part, whole[6:])
    np.testing.assert_array_equal(part_state, whole_state[6:])
    for threads in (1, 5):  # one run; as many runs as quads of rows (three)
        monkeypatch.setattr(cpu.numba, "get_num_threads", lambda threads=threads: threads)
        again, _ = cpu.forward(x, kernel, recurrent, bias, h0)
        np.testing.assert_array_equal(again, whole)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("units", [9, 90])
def test_one_row_without_mask_or_recurrent_dropout_writes_states_into_the_outputs(
        rng, monkeypatch, dtype, activation, units):
    """An inference call on one batch row without a mask or recurrent dropout runs on
    ``_one_row`` (each state written once, into its output slot, and read there by the next
    step): the same bits as the per-row path (taken with a mask that masks nothing) and the
    reference's values, with and without input dropout; a mask or recurrent dropout, or no
    timesteps, take the per-row path. 9 units: one four-vector tile; 90: tiles of eight vectors
    too (float32: 8 + 4 vectors, float64: 3 x 8), the weights scaled down to keep the
    pre-activations (and float32's rounding against the reference) the size of 9 units'."""
    calls = []
    one_row = cpu._one_row
    monkeypatch.setattr(cpu, "_one_row", lambda *a: calls.append(a[6]) or one_row(*a))
    problem = make_problem(rng, batch=1, steps=7, features=5, units=units, dtype=dtype,
                           dropout=True, scale=0.4 * (9 / units) ** 0.5)  # sums of like size
    rtol, atol = tolerance(dtype)
    every_step = np.ones((1, 7), bool)
    for go_backwards in (False, True):
        for return_sequences in (False, True):
            for input_dropout in (None, problem.input_dropout):
                kw = dict(go_backwards=go_backwards, return_sequences=return_sequences,
                          activation=activation, input_dropout=input_dropout)
                calls.clear()
                out, state = cpu.forward(*problem.arrays(), **kw)
                assert calls == [go_backwards]
                general_out, general_state = cpu.forward(*problem.arrays(), mask=every_step, **kw)
                assert calls == [go_backwards]  # with a mask: the per-row path
                np.testing.assert_array_equal(out, general_out)
                np.testing.assert_array_equal(state, general_state)
                ref_out, ref_state = reference.forward(*problem.arrays(), **kw)
                np.testing.assert_allclose(out, ref_out, rtol=rtol, atol=atol)
                np.testing.assert_allclose(state, ref_state, rtol=rtol, atol=atol)
    calls.clear()
    cpu.forward(*problem.arrays(), recurrent_dropout=problem.recurrent_dropout)
    cpu.forward(problem.x[:, :0], *problem.arrays()[1:])
    assert calls == []


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("path,features,units", [("fused", 100, 42), ("rows", 5, 30)])
def test_every_tile_shape_matches_reference(rng, monkeypatch, parallel, path, features, units):
    # float64: units not a whole number of vectors (4 lanes) nor of tiles, five rows (not a
    # whole number of tile rows): padded rows and columns must not leak into the results
    monkeypatch.setattr(cpu, "SERIAL_WORK", 0 if parallel else 1 << 62)
    monkeypatch.setattr(cpu, "FUSED_WEIGHT_BYTES", 1 << 62 if path == "fused" else 0)
    monkeypatch.setattr(cpu, "LANES_MAX_UNITS", 0)
    problem = make_problem(rng, batch=5, steps=6, features=features, units=units,
                           dtype=np.float64, masked=True, dropout=True)
    ref_out, ref_state = reference.forward(*problem.arrays(), **problem.options())
    for shape in range(len(cpu.TILE_SHAPES)):
        monkeypatch.setattr(cpu, "tile_shape", lambda *args, shape=shape: shape)
        out, state = cpu.forward(*problem.arrays(), **problem.options())
        np.testing.assert_allclose(out, ref_out, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(state, ref_state, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("units,batch,small,large", [(9, 5, False, True), (4, 8, False, False),
                                                     (9, 1, True, True)])
def test_large_or_one_row_calls_project_inputs_first_except_on_the_lanes_path(
        rng, monkeypatch, units, batch, small, large):
    """Inference projects first above FUSED_MAX_WORK, and on one batch row whatever its size
    (``small``/``large``: projected below/at the limit); lanes and training calls stay fused.
    Projecting first: the recurrence kernels get the input kernel (each run projects its rows)."""
    calls = []
    for name in ("_recurrence_serial", "_recurrence_parallel", "_one_row"):
        kernel = getattr(cpu, name)
        monkeypatch.setattr(cpu, name, lambda *args, kernel=kernel: calls.append(
            args[2] is not None) or kernel(*args))
    problem = make_problem(rng, batch=batch, steps=6, features=5, units=units, dtype=np.float32)
    work = batch * 6 * (5 + units) * units
    ref, _ = reference.forward(*problem.arrays(), **problem.options())
    rtol, atol = tolerance(np.float32)
    for limit, expected in ((work + 1, small), (work, large)):
        monkeypatch.setattr(cpu, "FUSED_MAX_WORK", limit)
        calls.clear()
        out, _ = cpu.forward(*problem.arrays(), **problem.options())
        assert calls == [expected]
        np.testing.assert_allclose(out, ref, rtol=rtol, atol=atol)
    # a training call (a backward pass follows) stays fused
    calls.clear()
    out, _, _ = functional.run(cpu, *problem.arrays(), **problem.options(), go_backwards=False,
                               activation="tanh", return_sequences=True)
    assert calls == [False]
    np.testing.assert_allclose(out, ref, rtol=rtol, atol=atol)


def test_prepared_weights_cached_only_for_immutable_arrays(rng):
    kernel, recurrent = rng.normal(size=(3, 4)), rng.normal(size=(4, 4))
    assert cpu.prepared_weights(kernel, recurrent, "fused") is not cpu.prepared_weights(
        kernel, recurrent, "fused")
    kernel.flags.writeable = recurrent.flags.writeable = False
    first = cpu.prepared_weights(kernel, recurrent, "fused")
    assert cpu.prepared_weights(kernel, recurrent, "fused") is first
    np.testing.assert_array_equal(first, np.concatenate([kernel, recurrent]))
    np.testing.assert_array_equal(cpu.prepared_weights(kernel, recurrent, "recurrent_t"), recurrent.T)
    padded = cpu.prepared_weights(kernel, recurrent, "fused", 8)
    assert padded is not first and cpu.prepared_weights(kernel, recurrent, "fused", 8) is padded
    np.testing.assert_array_equal(padded[:, :4], first)
    np.testing.assert_array_equal(padded[:, 4:], 0)
    assert all(w.flags.c_contiguous and w.ctypes.data % 64 == 0 for w in (first, padded))
    kernel.flags.writeable = True  # made writeable again: may change, so no longer cached
    assert cpu.prepared_weights(kernel, recurrent, "fused") is not first
    with pytest.raises(ValueError, match="layout"):
        cpu.prepared_weights(kernel, recurrent, "bogus")


def test_fast_float32_tanh_is_accurate_and_keeps_nan():
    z = np.concatenate([np.linspace(-12, 12, 200001), [0.0, -0.0, np.inf, -np.inf, np.nan]])
    fast = z.astype(np.float32)
    cpu.activate(fast, cpu.A.TANH)
    with np.errstate(invalid="ignore"):
        exact = np.tanh(z)
    np.testing.assert_allclose(fast[:-1], exact[:-1], rtol=0, atol=5e-7)
    assert np.isnan(fast[-1])


def test_fast_float64_tanh_is_within_3_ulp_and_keeps_special_values():
    rng = np.random.default_rng(0)
    z = np.concatenate([np.linspace(-30, 30, 600001), rng.normal(scale=3, size=200000),
                        10.0 ** rng.uniform(-320, 1.5, 200000) * rng.choice([-1, 1], 200000)])
    fast = z.copy()
    cpu.activate(fast, cpu.A.TANH)
    exact = np.tanh(z)
    ulps = np.abs(fast - exact) / np.spacing(np.maximum(np.abs(exact), np.finfo(np.float64).tiny))
    assert ulps.max() <= 3
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, -5e-324, 22.0, -700.0])
    fast = special.copy()
    cpu.activate(fast, cpu.A.TANH)
    np.testing.assert_array_equal(fast, np.tanh(special))  # NaN == NaN here
    np.testing.assert_array_equal(np.signbit(fast), np.signbit(special))


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("path", ["fused", "lanes"])
def test_rows_do_not_depend_on_batch_composition(rng, monkeypatch, parallel, path):
    """On one path, bit-identical rows whether run in another batch or split over threads."""
    monkeypatch.setattr(cpu, "SERIAL_WORK", 0 if parallel else 1 << 62)
    monkeypatch.setattr(cpu, "LANES_MAX_UNITS", 1 << 62 if path == "lanes" else 0)
    monkeypatch.setattr(cpu, "LANES_MIN_BATCH", 1)
    problem = make_problem(rng, batch=7, steps=6, features=5, units=19, dtype=np.float32)
    full, _ = cpu.forward(*problem.arrays())
    for lo, hi in [(0, 2), (1, 4), (4, 7), (5, 7), (0, 1), (6, 7)]:
        part, _ = cpu.forward(problem.x[lo:hi], problem.kernel, problem.recurrent_kernel,
                              problem.bias, problem.initial_state[lo:hi])
        if hi - lo > 1 or path == "lanes":
            np.testing.assert_array_equal(part, full[lo:hi])
        else:  # one row: 19 units are four vectors, a row_tile's two chains (equal to rounding)
            np.testing.assert_allclose(part, full[lo:hi], rtol=1e-6, atol=1e-6)


def test_parallel_rows_are_split_into_several_runs_per_thread_except_on_lanes():
    threads = numba.get_num_threads()
    assert cpu._runs(1000, lanes=False) == cpu.RUNS_PER_THREAD * threads
    assert cpu._runs(1000, lanes=True) == threads
    assert cpu._runs(1, lanes=False) == 1
