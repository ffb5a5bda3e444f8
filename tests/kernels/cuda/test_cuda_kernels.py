"""CUDA forward and backward kernels against the NumPy reference (simulator or GPU, tiny shapes)."""

import cuda_cases
import numpy as np
import pytest
from cuda_cases import assert_close

from simplernn_numba.kernels import config, reference
from simplernn_numba.kernels.device_arrays import is_device_array, simulated
from simplernn_numba.testing import ACTIVATIONS, make_problem

kernels = cuda_cases.kernels

SHAPE = dict(batch=3, steps=4, features=3, units=5)


def _check(kernels, rng, problem, dtype, *, go_backwards=False, return_sequences=True,
           activation="tanh", with_state=True, path=None):
    """Forward and backward against the reference; with ``path``, both ran that plan (a plan that
    does not fit falls back to another silently)."""
    opts = dict(**problem.options(), go_backwards=go_backwards, activation=activation)
    expected = reference.forward(*problem.arrays(), **opts, return_sequences=return_sequences)
    assert_close(kernels.forward(*problem.arrays(), **opts, return_sequences=return_sequences),
                 expected, dtype)
    assert path is None or kernels.last_plan().path == path
    seq, final_state = reference.forward(*problem.arrays(), **opts)
    d_out = rng.normal(size=expected[0].shape).astype(dtype)
    d_state = rng.normal(size=expected[1].shape).astype(dtype) if with_state else None
    args = (*problem.arrays(), seq, d_out, d_state)
    assert_close(kernels.backward(*args, **opts), reference.backward(*args, **opts), dtype)
    assert path is None or kernels.last_plan().path == path


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_and_derivative(kernels, rng, activation):
    problem = make_problem(rng, batch=2, steps=3, features=2, units=3, masked=True, scale=0.8)
    _check(kernels, rng, problem, np.float64, activation=activation)


def test_default_launch_configuration(kernels, rng):
    config.reset()
    config.set(CUDA_PERSISTENT=False)
    _check(kernels, rng, make_problem(rng, **SHAPE, dtype=np.float32, masked=True), np.float32)


TINY = dict(batch=1, steps=3, features=2, units=3)


@pytest.mark.parametrize("threads,lanes,shape,staged,used_lanes", [
    (4, 2, SHAPE, True, 1),  # 15 dot products on few threads: one lane each, several rounds
    (2, 1, SHAPE, True, 1),  # staging loops twice over 4 elements per thread
    (32, 8, TINY, True, 8),  # 8-lane groups summed in shared memory
    (32, 8, TINY, False, 8),  # states read from global memory
    (4, 4, SHAPE, False, 1),
])
def test_persistent_kernels_match_reference(kernels, rng, monkeypatch, threads, lanes, shape, staged,
                                            used_lanes):
    """One block holding all of U (always so under the simulator, and for these sizes on a GPU)."""
    config.set(CUDA_PERSISTENT=True, CUDA_THREADS_PER_BLOCK=threads, CUDA_PERSISTENT_LANES=lanes)
    kernel = kernels.persistent.forward_kernel(np.dtype(np.float64))
    if not staged:  # room for U's slice and the reduction slots only
        full = kernels.plan.persistent_plan(kernel, shape["batch"], shape["units"], 8)
        config.set(CUDA_SHARED_MEMORY_LIMIT=full.shared_bytes - 1)
    plan = kernels.plan.persistent_plan(kernel, shape["batch"], shape["units"], 8)
    assert (plan.blocks, plan.stage, plan.lanes) == (1, staged, used_lanes)
    problem = make_problem(rng, **shape, masked=True, dropout=True)
    _check(kernels, rng, problem, np.float64, go_backwards=True, path="persistent")


@pytest.mark.parametrize("rows,threads,shape", [
    (1, 4, SHAPE),  # one row per block, 5 pairs on 4 threads
    (2, 3, SHAPE),  # the last block holds one row of two
    (3, 64, SHAPE),  # every pair its own thread, idle threads
    (1, 1, TINY),
])
@pytest.mark.parametrize("dtype,masked,dropout,go_backwards,return_sequences", [
    (np.float64, True, True, True, True),
    (np.float64, True, False, False, False),
    (np.float32, False, True, False, True),
    (np.float32, False, False, True, False),
])
def test_rows_kernels_match_reference(kernels, rng, rows, threads, shape, dtype, masked, dropout,
                                      go_backwards, return_sequences):
    """Batch rows per block, all of U in shared memory (``rows_plan``), forward and backward."""
    config.set(CUDA_ROWS=True, CUDA_ROWS_PER_BLOCK=rows, CUDA_ROWS_MAX_THREADS=threads)
    kernel = kernels.rows.forward_kernel(np.dtype(dtype))
    plan = kernels.plan.rows_plan(kernel, shape["batch"], shape["units"], np.dtype(dtype).itemsize, 4)
    assert (plan.rows, plan.threads) == (min(rows, shape["batch"]),
                                         min(threads, plan.rows * shape["units"]))
    problem = make_problem(rng, **shape, dtype=dtype, masked=masked, dropout=dropout)
    _check(kernels, rng, problem, dtype, go_backwards=go_backwards, return_sequences=return_sequences,
           path="rows")


@pytest.mark.parametrize("use_bias", [True, False])
def test_rows_kernel_reads_the_input_kernel_from_global_memory_when_it_does_not_fit(
        kernels, rng, monkeypatch, use_bias):
    config.set(CUDA_ROWS=True, CUDA_ROWS_PER_BLOCK=1, CUDA_ROWS_MAX_THREADS=4)
    batch, units, features = SHAPE["batch"], SHAPE["units"], SHAPE["features"]
    without = (units * units + 2 * features + 4 * units) * 8  # one row, dropout buffers
    config.set(CUDA_SHARED_MEMORY_LIMIT=without)
    no_opt_in = lambda k, n: n <= config.CUDA_SHARED_MEMORY_LIMIT  # noqa: E731
    monkeypatch.setattr(kernels.plan, "allow_shared", no_opt_in)
    kernel = kernels.rows.forward_kernel(np.dtype(np.float64))
    plan = kernels.plan.rows_plan(kernel, batch, units, 8, 4, features=features)
    assert (plan.rows, plan.kernel_shared, plan.shared_bytes) == (1, False, without)
    config.set(CUDA_SHARED_MEMORY_LIMIT=without + features * units * 8)
    assert kernels.plan.rows_plan(kernel, batch, units, 8, 4, features=features).kernel_shared
    config.set(CUDA_SHARED_MEMORY_LIMIT=without)
    problem = make_problem(rng, **SHAPE, masked=True, dropout=True, use_bias=use_bias)
    _check(kernels, rng, problem, np.float64, go_backwards=True)


def test_rows_kernels_on_fully_masked_rows_and_units_not_multiple_of_four(kernels, rng):
    config.set(CUDA_ROWS=True, CUDA_ROWS_PER_BLOCK=2, CUDA_ROWS_MAX_THREADS=8)
    problem = make_problem(rng, batch=3, steps=5, features=2, units=7, masked=True, dropout=True)
    problem.mask[1] = False
    problem.mask[2, :3] = False
    _check(kernels, rng, problem, np.float64, path="rows")
    _check(kernels, rng, problem, np.float64, go_backwards=True, with_state=False, path="rows")


def test_rows_plan_rule(kernels, monkeypatch):
    """Rows per block halve until U and the rows' buffers fit in shared memory; None when one
    row does not; the threads are one per (row, unit) pair up to the cap."""
    config.set(CUDA_ROWS=True, CUDA_ROWS_PER_BLOCK=16, CUDA_ROWS_MAX_THREADS=1024)
    kernel = kernels.rows.forward_kernel(np.dtype(np.float32))
    # on a GPU, also at most the threads the kernel's registers allow in one block
    most = (1024 if simulated()
            else next(iter(kernel.overloads.values())).max_threads_per_block)
    plan = kernels.plan.rows_plan(kernel, batch=40, units=64, itemsize=4, buffers=2)
    assert plan == (3, min(1024, most), 16, (64 * 64 + 2 * 16 * 64) * 4, False, 1, 64)
    config.set(CUDA_SHARED_MEMORY_LIMIT=(64 * 64 + 2 * 5 * 64) * 4)
    no_opt_in = lambda k, n: n <= config.CUDA_SHARED_MEMORY_LIMIT  # noqa: E731
    monkeypatch.setattr(kernels.plan, "allow_shared", no_opt_in)
    plan = kernels.plan.rows_plan(kernel, batch=40, units=64, itemsize=4, buffers=2)
    assert (plan.blocks, plan.rows, plan.threads) == (10, 4, min(256, most))  # 16 -> 8 -> 4
    config.set(CUDA_SHARED_MEMORY_LIMIT=(64 * 64 + 2 * 64) * 4 - 1)
    assert kernels.plan.rows_plan(kernel, batch=40, units=64, itemsize=4, buffers=2) is None
    config.set(CUDA_ROWS=False)
    assert kernels.plan.rows_plan(kernel, batch=40, units=32, itemsize=4, buffers=2) is None


def test_rows_plan_lanes_rule(kernels, monkeypatch):
    """(As on a real GPU.) Lanes halve while the pairs' groups exceed the block; with more than
    one lane the weights' row stride is padded to 32 / lanes modulo 32, so that the groups of a
    warp start on different banks; the shared memory counts the padded rows."""
    from types import SimpleNamespace

    monkeypatch.setattr(kernels.plan, "simulated", lambda: False)
    monkeypatch.setattr(kernels.plan, "multiprocessors", lambda: 132)
    monkeypatch.setattr(kernels.plan, "allow_shared", lambda k, n: n <= 227 * 1024)
    kernel = SimpleNamespace(overloads={"sig": SimpleNamespace(max_threads_per_block=640)})
    config.set(CUDA_ROWS=True, CUDA_ROWS_PER_BLOCK="auto", CUDA_ROWS_MAX_THREADS=1024)
    plan = kernels.plan.rows_plan(kernel, batch=1, units=64, itemsize=4, buffers=2, features=16, lanes=8)
    assert (plan.rows, plan.lanes, plan.ld, plan.threads) == (1, 8, 68, 512)  # 68 = 64 + 4
    assert plan.shared_bytes == (68 * (64 + 16) + 2 * 16 + 2 * 64) * 4 and plan.kernel_shared
    plan = kernels.plan.rows_plan(kernel, batch=1, units=100, itemsize=4, buffers=2, features=16, lanes=32)
    assert (plan.lanes, plan.ld, plan.threads) == (4, 104, 400)  # 100 * 8 > 640: 32 -> 4 lanes
    plan = kernels.plan.rows_plan(kernel, batch=1, units=33, itemsize=4, buffers=2, features=16, lanes=32)
    assert (plan.lanes, plan.ld, plan.threads) == (16, 34, 528)  # 33 * 32 > 640
    plan = kernels.plan.rows_plan(kernel, batch=300, units=64, itemsize=4, buffers=2, features=16, lanes=4)
    assert (plan.rows, plan.lanes, plan.ld, plan.blocks) == (3, 2, 80, 100)  # 3 rows of 64: 2 lanes
    plan = kernels.plan.rows_plan(kernel, batch=1, units=64, itemsize=4, buffers=3)
    assert (plan.lanes, plan.ld) == (1, 64)  # the backward kernel: one lane, no padding


def test_persistent_plan_rule(kernels):
    """Lanes halve until every dot product of a step has a group of threads; rows are padded so
    that consecutive groups start on different banks; the states are staged when they fit."""
    config.set(CUDA_PERSISTENT_LANES=32)
    plan = kernels.plan.persistent_slice(batch=1, units=20, itemsize=4, threads=256, cols=20)
    assert (plan.blocks, plan.threads, plan.lanes, plan.ld, plan.stage) == (1, 256, 8, 24, True)
    assert plan.shared_bytes == (24 * 20 + 256 + 24) * 4
    single = kernels.plan.persistent_slice(batch=64, units=20, itemsize=4, threads=256, cols=20)
    assert (single.lanes, single.ld, single.shared_bytes) == (1, 21, (21 * 20 + 64 * 21) * 4)
    many = kernels.plan.persistent_slice(batch=4, units=300, itemsize=4, threads=256, cols=3)
    assert (many.blocks, many.lanes, many.ld, many.stage) == (100, 16, 304, True)
    assert kernels.plan.persistent_slice(batch=64, units=300, itemsize=4, threads=256, cols=3).stage is False
    assert kernels.plan.persistent_slice(batch=1, units=300, itemsize=4, threads=256, cols=300) is None
    # one block per multiprocessor while a slice fits, else smaller slices over more blocks
    assert kernels.plan.grid_plan(batch=4, units=512, itemsize=4, threads=256, sms=132).blocks == 128
    big = kernels.plan.grid_plan(batch=1, units=2000, itemsize=4, threads=256, sms=132)
    assert big.cols < 16 and big.shared_bytes <= config.CUDA_SHARED_MEMORY_LIMIT
    assert kernels.plan.persistent_slice(batch=1, units=2000, itemsize=4, threads=256,
                                         cols=big.cols + 1) is None
    assert kernels.plan.grid_plan(batch=1, units=20000, itemsize=4, threads=256, sms=132) is None


def test_device_arrays_in_device_arrays_out(kernels, rng):
    from numba import cuda

    problem = make_problem(rng, **SHAPE, masked=True, dropout=True)
    expected = reference.forward(*problem.arrays(), **problem.options())
    on_gpu = [cuda.to_device(a) for a in problem.arrays()]
    opts = {k: cuda.to_device(v) for k, v in problem.options().items()}
    out, state = kernels.forward(*on_gpu, **opts)
    assert is_device_array(out) and is_device_array(state)
    assert_close((out, state), expected, np.float64)
    d_out = rng.normal(size=expected[0].shape)
    grads = kernels.backward(*on_gpu, out, cuda.to_device(d_out), None, **opts)
    assert all(is_device_array(g) for g in grads.values())
    ref = reference.backward(*problem.arrays(), expected[0], d_out, None, **problem.options())
    assert_close(grads, ref, np.float64)


def test_host_arrays_in_host_arrays_out(kernels, rng):
    problem = make_problem(rng, batch=1, steps=2, features=2, units=2)
    out, state = kernels.forward(*problem.arrays())
    assert type(out) is np.ndarray and type(state) is np.ndarray


def test_empty_batch(kernels, rng):
    problem = make_problem(rng, batch=0, steps=2, features=2, units=3)
    out, state = kernels.forward(*problem.arrays())
    assert out.shape == (0, 2, 3) and state.shape == (0, 3)
    grads = kernels.backward(*problem.arrays(), out, None, None)
    assert grads["inputs"].shape == (0, 2, 2)
    np.testing.assert_array_equal(grads["kernel"], 0)


def test_callable_activation_is_rejected(kernels, rng):
    problem = make_problem(rng, batch=1, steps=1, features=1, units=1)
    with pytest.raises(TypeError, match="built-in activation"):
        kernels.forward(*problem.arrays(), activation=np.tanh)


@pytest.mark.parametrize("dtype,masked,dropout,go_backwards,use_bias,return_sequences", [
    (np.float64, True, True, True, True, True),
    (np.float32, False, False, False, False, False),
])
def test_tiled_step_kernels_match_reference(kernels, rng, dtype, masked, dropout, go_backwards,
                                            use_bias, return_sequences):
    config.set(CUDA_TILED_STEP_MIN_BATCH=1)
    problem = make_problem(rng, **SHAPE, dtype=dtype, masked=masked, dropout=dropout,
                           use_bias=use_bias)
    _check(kernels, rng, problem, dtype, go_backwards=go_backwards, return_sequences=return_sequences,
           path="per_step")
    assert kernels.last_plan().launch.tiled


def test_mismatched_dtypes_are_rejected(kernels, rng):
    problem = make_problem(rng, batch=1, steps=1, features=1, units=1, dtype=np.float32)
    with pytest.raises(TypeError, match="recurrent_kernel must have dtype float32"):
        kernels.forward(problem.x, problem.kernel, problem.recurrent_kernel.astype(np.float64),
                        problem.bias, problem.initial_state)
