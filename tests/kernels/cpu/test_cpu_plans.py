"""The CPU kernels' plans: the choice of path for each call, and every path against the NumPy
reference (forward; the backward paths are in test_cpu_backward.py).

Small problems take the lanes or rows paths by default; ``config.override`` sends them down
the others (:data:`FORWARD`), and ``cpu.last_plan()`` says which path ran.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numba
import numpy as np
import pytest

from simplernn_numba.kernels import config, cpu, reference
from simplernn_numba.kernels.config import VECTOR_BYTES
from simplernn_numba.kernels.cpu.plan import Plan, backward_plan, forward_plan
from simplernn_numba.kernels.cpu.products import TILE_SHAPES, rows_path_shape
from simplernn_numba.testing import make_problem, tolerance

BIG = 1 << 40
#: config settings that send a small problem down each forward path.
FORWARD = {
    "lanes": dict(LANES_MAX_UNITS=BIG, LANES_MIN_BATCH=1, FUSED_WEIGHT_BYTES=BIG),
    "rows_fused": dict(LANES_MAX_UNITS=0, FUSED_WEIGHT_BYTES=BIG, FUSED_MAX_WORK=BIG,
                       ROWS_WEIGHT_BYTES=BIG, PANELS_MIN_UNITS=BIG),
    "rows_projected": dict(LANES_MAX_UNITS=0, FUSED_WEIGHT_BYTES=0, ROWS_WEIGHT_BYTES=BIG,
                           PANELS_MIN_UNITS=BIG),
    "panels": dict(LANES_MAX_UNITS=0, ROWS_WEIGHT_BYTES=0, PANELS_MIN_BATCH=1),
    "gemm": dict(LANES_MAX_UNITS=0, FUSED_WEIGHT_BYTES=0, ROWS_WEIGHT_BYTES=0, PANELS_MIN_BATCH=1),
}
ROOT = Path(__file__).resolve().parents[3]


def _plan(*shape, masked=False, recurrent_dropout=False, training=False, itemsize=4):
    return forward_plan(*shape, itemsize, masked=masked, recurrent_dropout=recurrent_dropout,
                        training=training)


def test_forward_plan_rules():
    """The default rules on the benchmark shapes, and what moves a call from one path to
    another (see plan.py). Plans of one run are the same whatever the thread count."""
    assert _plan(32, 10, 8, 4) == Plan("lanes", 1, -1, True)
    one_row = TILE_SHAPES.index((1, 4, VECTOR_BYTES))  # 64 units: whole vectors of either width
    assert _plan(1, 1000, 16, 64) == Plan("one_row", 1, one_row, True)  # inputs in the steps
    assert _plan(1, 1000, 16, 64, masked=True).path == "rows"  # a mask: the general per-row path
    assert _plan(1, 1000, 16, 64, training=True) == Plan("rows", 1, one_row, True)  # fused
    assert _plan(64, 100, 128, 128).path == "panels"
    assert _plan(64, 100, 128, 128, masked=True).path == "rows"
    assert _plan(64, 100, 128, 128, recurrent_dropout=True).path == "rows"
    assert _plan(7, 100, 128, 128).path == "rows"  # fewer rows than PANELS_MIN_BATCH
    assert _plan(8, 40, 8, 63).path == "rows" and _plan(8, 40, 8, 64).path == "panels"
    assert _plan(8, 20, 8, 64).path == "rows"  # below SERIAL_WORK: no panels for 64 units
    assert _plan(8, 2, 3, 190, itemsize=8).path == "panels"  # 190x190 float64 beyond L2
    assert _plan(8, 2, 3, 300, masked=True) == Plan("gemm", 1)
    assert _plan(8, 2, 3, 300, masked=True, training=True).path == "gemm"  # not in L2: not fused
    assert _plan(7, 2, 3, 300, masked=True).path == "rows"
    assert _plan(16, 500, 32, 32).fused and not _plan(32, 500, 32, 32).fused  # FUSED_MAX_WORK
    assert _plan(1, 10, 8, 8).fused and not _plan(1, 10, 8, 100).fused  # STEP_INPUT_BYTES
    with config.override(STEP_INPUT_BYTES=0):
        assert _plan(1, 1000, 16, 64) == Plan("one_row", 1, one_row, False)  # projected first
    two_vectors = (1, 2, 64) if VECTOR_BYTES == 64 else (1, 4, 32)  # 24 units: 32 padded
    assert _plan(2, 800, 24, 24) == Plan("two_rows", 1, TILE_SHAPES.index(two_vectors), True)
    assert _plan(2, 800, 24, 24, masked=True) == Plan("rows", 1, TILE_SHAPES.index((2, 4, 32)), True)
    assert _plan(2, 800, 24, 24, training=True).path == "rows"  # fused: weights in L2
    assert _plan(2, 800, 24, 300, training=True).path == "two_rows"  # beyond L2: projected
    threads = numba.get_num_threads()
    assert _plan(16, 500, 32, 32).runs == min(config.RUNS_PER_THREAD * threads, 8)
    assert _plan(64, 200, 8, 16) == Plan("lanes", threads, -1, True)  # fewer than LANES_RUN_ROWS
    lanes_runs = min(config.RUNS_PER_THREAD * threads, 1024 // config.LANES_RUN_ROWS)
    assert _plan(1024, 200, 8, 16).runs == max(threads, lanes_runs)
    # panels: runs of PANELS_RUN_QUADS quads or more, RUNS_PER_THREAD a thread, one per thread
    assert _plan(64, 100, 128, 128).runs == max(threads, min(config.RUNS_PER_THREAD * threads, 4))
    assert _plan(256, 30, 64, 256).runs == max(threads, min(config.RUNS_PER_THREAD * threads, 16))
    assert _plan(8, 40, 8, 64).runs == min(threads, 2)  # fewer quads than runs: one per thread
    with config.override(RUNS_PER_THREAD=1):
        assert _plan(64, 100, 128, 128).runs == threads
    with config.override(PANELS_RUN_QUADS=1):
        assert _plan(64, 100, 128, 128).runs == min(config.RUNS_PER_THREAD * threads, 16)
    with config.override(SERIAL_WORK=BIG):
        assert _plan(16, 500, 32, 32).runs == 1
    with config.override(**FORWARD["gemm"]):
        assert _plan(5, 7, 5, 9, masked=True).path == "gemm"
        assert _plan(5, 7, 5, 9).path == "panels"


def test_backward_plan_rules():
    def plan(*shape, masked=False, recurrent_dropout=False, preactivations=False, itemsize=4):
        return backward_plan(*shape, itemsize, masked=masked, recurrent_dropout=recurrent_dropout,
                             preactivations=preactivations)

    assert plan(32, 10, 4) == Plan("lanes", 1)
    assert plan(7, 10, 4).path == "rows"  # lanes from LANES_MIN_BATCH rows
    assert plan(4, 10, 24) == Plan("rows", 1, TILE_SHAPES.index((4, 2, VECTOR_BYTES)))
    assert plan(8, 10, 300).path == "panels" and plan(7, 10, 300).path == "gemm_plain"
    for kind in ("masked", "recurrent_dropout", "preactivations"):
        assert plan(8, 10, 300, **{kind: True}).path == "gemm"
    assert plan(64, 100, 128).runs == min(config.RUNS_PER_THREAD * numba.get_num_threads(), 32)
    threads = numba.get_num_threads()
    assert plan(64, 10, 300).runs == max(threads, min(config.RUNS_PER_THREAD * threads, 4))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("path", sorted(FORWARD))
def test_every_forward_path_matches_reference(rng, path, dtype):
    """Each path, on one run of rows and on several over the threads, with input and recurrent
    dropout, with a mask at one dtype and without at the other (a mask and a dtype are each a
    compiled variant; the panels path takes neither a mask nor recurrent dropout), forwards and
    backwards, every output or the last; batches and widths that are not whole tiles, quads of
    rows or panels (float32 panels are 24 units wide, float64 12)."""
    rtol, atol = tolerance(dtype)
    turn = (sorted(FORWARD).index(path) + (dtype == np.float64)) % 2
    for masked in [False] if path == "panels" else [bool(turn)]:
        # weights scaled as the units grow, to keep the sums (and float32 rounding) as with 9 units
        problem = make_problem(rng, batch=9, steps=7, features=5, units=30, dtype=dtype,
                               masked=masked, dropout=True, scale=0.4 * 0.3 ** 0.5)
        options = problem.options()
        if path == "panels":
            options["recurrent_dropout"] = None
        for serial_work in (BIG, 0):
            with config.override(**FORWARD[path], SERIAL_WORK=serial_work):
                for go_backwards in (False, True):
                    for return_sequences in (False, True):
                        kw = dict(options, go_backwards=go_backwards, return_sequences=return_sequences)
                        out, state = cpu.forward(*problem.arrays(), **kw)
                        plan = cpu.last_plan()
                        assert plan.path == path.split("_")[0], plan
                        assert plan.fused == (path in ("lanes", "rows_fused")), plan
                        if serial_work == 0 and path != "gemm":
                            assert plan.runs > 1 or numba.get_num_threads() == 1, plan
                        ref_out, ref_state = reference.forward(*problem.arrays(), **kw)
                        np.testing.assert_allclose(out, ref_out, rtol=rtol, atol=atol)
                        np.testing.assert_allclose(state, ref_state, rtol=rtol, atol=atol)
                        assert out.flags.c_contiguous and state.flags.c_contiguous


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "gelu"])
def test_other_activations_on_the_large_kernel_paths(rng, activation):
    """The panels and per-step GEMM paths compile their activation in (tanh is the default
    tested everywhere); float64, so the comparison is tight."""
    problem = make_problem(rng, batch=5, steps=6, features=5, units=9, masked=True, dropout=True)
    for path in ("panels", "gemm"):
        kw = dict(problem.options(), activation=activation)
        if path == "panels":
            kw.update(mask=None, recurrent_dropout=None)
        with config.override(**FORWARD[path]):
            out, state = cpu.forward(*problem.arrays(), **kw)
        assert cpu.last_plan().path == path
        ref_out, ref_state = reference.forward(*problem.arrays(), **kw)
        np.testing.assert_allclose(out, ref_out, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(state, ref_state, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("units", [9, 64, 90])
def test_one_row_path_gives_the_rows_paths_bits(rng, monkeypatch, dtype, units):
    """One batch row without a mask or recurrent dropout runs on its own kernel (each step's
    input product in the step, the states in a ring): the same bits as the rows path on the same
    tile shape (taken with a mask that masks nothing, the projection first) and the reference's
    values. 9 units: one tile; 90: several. With 64-byte vectors, 9 and 90 float32 units (and 9
    float64) take tiles of two vectors, 64 units (and 90 float64) of four; with 32-byte vectors,
    9 units two, 64 and 90 four."""
    from simplernn_numba.kernels.cpu import plan as plans

    problem = make_problem(rng, batch=1, steps=7, features=5, units=units, dtype=dtype,
                           dropout=True, scale=0.4 * (9 / units) ** 0.5)
    rtol, atol = tolerance(dtype)
    for go_backwards in (False, True):
        for return_sequences in (False, True):
            kw = dict(go_backwards=go_backwards, return_sequences=return_sequences,
                      input_dropout=problem.input_dropout)
            out, state = cpu.forward(*problem.arrays(), **kw)
            plan = cpu.last_plan()
            assert plan.path == "one_row" and TILE_SHAPES[plan.tile][0] == 1
            with monkeypatch.context() as patched:
                patched.setattr(plans, "tile_shape", lambda *args, tile=plan.tile: tile)
                rows_out, rows_state = cpu.forward(*problem.arrays(), mask=np.ones((1, 7), bool), **kw)
            assert cpu.last_plan() == plan._replace(path="rows", fused=False)
            np.testing.assert_array_equal(out, rows_out)
            np.testing.assert_array_equal(state, rows_state)
            ref_out, ref_state = reference.forward(*problem.arrays(), **kw)
            np.testing.assert_allclose(out, ref_out, rtol=rtol, atol=atol)
            np.testing.assert_allclose(state, ref_state, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("units", [9, 64])
def test_two_rows_path_matches_reference(rng, dtype, units):
    """Two batch rows without a mask or recurrent dropout run on their own kernel (the
    projection first, two partial sums over ``k`` per accumulator, both rows on each load of the
    weights): the reference's values, forwards and backwards, every output or the last, with
    input dropout; 9 units (K = 9: an odd term left over) and 64; relu (activated after the
    products are stored) in float64."""
    problem = make_problem(rng, batch=2, steps=7, features=5, units=units, dtype=dtype,
                           dropout=True, scale=0.4 * (9 / units) ** 0.5)
    rtol, atol = tolerance(dtype)
    activations = ["tanh", "relu"] if dtype == np.float64 and units == 9 else ["tanh"]
    for activation in activations:
        for go_backwards in (False, True):
            for return_sequences in (False, True):
                kw = dict(go_backwards=go_backwards, return_sequences=return_sequences,
                          input_dropout=problem.input_dropout, activation=activation)
                out, state = cpu.forward(*problem.arrays(), **kw)
                plan = cpu.last_plan()
                assert plan.path == "two_rows" and TILE_SHAPES[plan.tile][0] == 1, plan
                ref_out, ref_state = reference.forward(*problem.arrays(), **kw)
                np.testing.assert_allclose(out, ref_out, rtol=rtol, atol=atol)
                np.testing.assert_allclose(state, ref_state, rtol=rtol, atol=atol)
                assert out.flags.c_contiguous and state.flags.c_contiguous


#: Settings that cut a batch into as many small runs as the plan rules allow.
SMALL_RUNS = dict(SERIAL_WORK=0, BACKWARD_SERIAL_WORK=0, RUNS_PER_THREAD=4, PANELS_RUN_QUADS=1,
                  LANES_RUN_ROWS=2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("path", ["lanes", "panels"])
def test_load_balanced_runs_give_the_bits_of_one_run(rng, path, dtype):
    """The parallel plans cut the batch into more runs than threads (RUNS_PER_THREAD a thread,
    handed out as threads come free): a row's result is the same bits on one run on the calling
    thread, on many small runs, and on one or all of Numba's threads; forward and backward."""
    problem = make_problem(rng, batch=37, steps=5, features=6, units=30, dtype=dtype, scale=0.3)
    arrays = problem.arrays()
    settings = dict(FORWARD[path], LANES_MIN_BATCH=1, PANELS_MIN_BATCH=1)

    def call():
        out, state = cpu.forward(*arrays)
        forward_plan = cpu.last_plan()
        grads = cpu.backward(*arrays, out, np.ones_like(out))
        return (out, state, *grads.values()), forward_plan, cpu.last_plan()

    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with config.override(**settings, SERIAL_WORK=BIG, BACKWARD_SERIAL_WORK=BIG, RUNS_PER_THREAD=1):
            whole, forward_plan, backward_plan = call()
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert forward_plan.path == backward_plan.path == path
    assert forward_plan.runs == backward_plan.runs == 1
    for count in sorted({1, threads}):
        numba.set_num_threads(count)
        try:
            with config.override(**settings, **SMALL_RUNS):
                split, forward_plan, backward_plan = call()
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        # panels: 10 quads; lanes: 18 row pairs forward, 19 backward: more runs than threads
        assert forward_plan.runs == min(4 * count, 18 if path == "lanes" else 10)
        assert backward_plan.runs == min(4 * count, 19 if path == "lanes" else 10)
        for got, expected in zip(split, whole):
            np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("path", ["lanes", "rows_fused", "rows_projected", "panels"])
def test_rows_do_not_depend_on_batch_composition_or_threads(rng, path):
    """On one path, a row's result is the same bits whatever the other rows of its batch and
    however the batch is cut into runs over the threads (the rows path's tile shapes of several
    rows give the same bits, and a part of the batch may take another)."""
    problem = make_problem(rng, batch=11, steps=6, features=7, units=40, dtype=np.float32,
                           scale=0.2)
    x, kernel, recurrent, bias, h0 = problem.arrays()
    with config.override(**FORWARD[path], SERIAL_WORK=BIG):
        whole, whole_state = cpu.forward(x, kernel, recurrent, bias, h0)
        plan = cpu.last_plan()
        rows = 8 if path == "panels" else 6  # whole quads of rows / tiles of four rows
        part, part_state = cpu.forward(x[-rows:], kernel, recurrent, bias, h0[-rows:])
        assert cpu.last_plan().path == plan.path
    np.testing.assert_array_equal(part, whole[-rows:])
    np.testing.assert_array_equal(part_state, whole_state[-rows:])
    with config.override(**FORWARD[path], SERIAL_WORK=0):
        for threads in sorted({1, numba.get_num_threads()}):
            numba.set_num_threads(threads)
            try:
                again, _ = cpu.forward(x, kernel, recurrent, bias, h0)
            finally:
                numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
            np.testing.assert_array_equal(again, whole)


def test_every_tile_shape_matches_reference(rng, monkeypatch):
    """Each tile shape the rows path takes, with padded rows and units (float64: 4 lanes; 42
    units is no whole number of vectors), the fused and projected paths taking turns (each path
    runs every row count and both vector widths; each shape/path pair is a compiled variant)."""
    from simplernn_numba.kernels.cpu import plan as plans

    problem = make_problem(rng, batch=5, steps=6, features=20, units=42, masked=True, dropout=True)
    ref_out, ref_state = reference.forward(*problem.arrays(), **problem.options())
    paths = ("rows_fused", "rows_projected")
    shapes = list(filter(rows_path_shape, range(len(TILE_SHAPES))))
    for turn in range(len(paths)):
        taken = [TILE_SHAPES[i] for i in shapes[turn::len(paths)]]
        assert {rows for rows, _, _ in taken} == {1, 2, 4} and {b for _, _, b in taken} == {32, 64}
    for turn, shape in enumerate(shapes):
        monkeypatch.setattr(plans, "tile_shape", lambda *args, shape=shape: shape)
        with config.override(**FORWARD[paths[turn % len(paths)]]):
            out, state = cpu.forward(*problem.arrays(), **problem.options())
        assert cpu.last_plan().tile == shape
        np.testing.assert_allclose(out, ref_out, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(state, ref_state, rtol=1e-10, atol=1e-12)


def test_empty_batch_and_no_timesteps_compile_nothing(rng):
    problem = make_problem(rng, batch=3, steps=4, dtype=np.float32)
    x, kernel, recurrent, bias, h0 = problem.arrays()
    out, state = cpu.forward(x[:0], kernel, recurrent, bias, h0[:0])
    assert out.shape == (0, 4, 6) and state.shape == (0, 6)
    out, state = cpu.forward(x[:, :0], kernel, recurrent, bias, h0, return_sequences=False)
    np.testing.assert_array_equal(out, 0)
    np.testing.assert_array_equal(state, h0)


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


_FIRST_CALL = textwrap.dedent("""
    import json
    import numpy as np
    from simplernn_numba.kernels import cpu
    from simplernn_numba.kernels.cpu import gemm, lanes, panels, products, rows
    x = np.ones((32, 10, 8), np.float32)
    w = np.full((8, 4), 0.1, np.float32); u = np.full((4, 4), 0.1, np.float32)
    cpu.forward(x, w, u, None, np.zeros((32, 4), np.float32))
    cpu.forward(x, w, u, None, np.zeros((32, 4), np.float32))  # compiled now: no new notice
    kernels = {module.__name__.rsplit(".", 1)[1] + "." + name: getattr(module, name).signatures
               for module in (gemm, lanes, panels, products, rows)
               for name in dir(module) if hasattr(getattr(module, name), "signatures")}
    print(json.dumps({"plan": cpu.last_plan().path,
                      "compiled": sorted(k for k, v in kernels.items() if v)}))
""")


def test_a_first_call_compiles_only_its_plans_kernels(tmp_path):
    """In a fresh interpreter with an empty cache: the lanes plan compiles lanes.forward and
    nothing of the other paths (their kernels keep no signatures), and says once, on stderr,
    that it compiles."""
    import json

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-c", _FIRST_CALL], env=env, capture_output=True,
                            text=True, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["plan"] == "lanes"
    assert report["compiled"] == ["lanes.forward"], report
    notices = [line for line in result.stderr.splitlines() if "is compiling kernels" in line]
    assert len(notices) == 1 and "float32 tanh, plan lanes" in notices[0], result.stderr
    assert str(tmp_path) in notices[0]
    quiet = subprocess.run([sys.executable, "-c", "import logging; logging.getLogger("
                            "'simplernn_numba').setLevel(logging.ERROR)\n" + _FIRST_CALL],
                           env=dict(env, NUMBA_CACHE_DIR=str(tmp_path / "again")),
                           capture_output=True, text=True, check=True)
    assert "is compiling kernels" not in quiet.stderr
