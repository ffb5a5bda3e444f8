"""The register-resident plans (``_cuda_registers*``) against the NumPy reference (simulator or GPU).

Tiny shapes with few weights a thread (several lanes per column, so the shuffle sums run) and
one staged load a thread (chunks of a few steps, so several chunks and their hand-over run).
"""

import cuda_cases
import numpy as np
import pytest
from cuda_cases import assert_close

from simplernn_numba import activations as A
from simplernn_numba.kernels import config, reference
from simplernn_numba.kernels.device_arrays import is_device_array
from simplernn_numba.testing import ACTIVATIONS, make_problem

kernels = cuda_cases.kernels


@pytest.fixture
def registers(kernels):
    """The CUDA module with the register-resident plans on: 2 weights a thread, 1 staged load;
    the plan caches emptied before and after (tests replace what the plans consult)."""
    from simplernn_numba.kernels.cuda import plan as plans

    config.set(CUDA_REGISTERS=True, CUDA_REGISTERS_WEIGHTS=2, CUDA_REGISTERS_STAGED=1,
               CUDA_REGISTERS_ROWS=1)
    plans._registers_forward.cache_clear()
    plans._registers_backward.cache_clear()
    yield kernels
    plans._registers_forward.cache_clear()
    plans._registers_backward.cache_clear()


def _plans(kernels, problem, *, activation="tanh", return_sequences=True, dout_mode=1):
    from simplernn_numba.kernels.cuda import plan as plans

    batch, steps, features = problem.x.shape
    units = problem.recurrent_kernel.shape[0]
    dtype, act = problem.x.dtype, A.code(activation)
    masked, dropped = problem.mask is not None, problem.recurrent_dropout is not None
    return (plans.registers_forward_plan(batch, steps, features, units, dtype, act, masked, dropped,
                                        return_sequences),
            plans.registers_backward_plan(batch, steps, features, units, dtype, act, dout_mode, masked,
                                         dropped))


def _check(kernels, rng, problem, *, go_backwards=False, return_sequences=True, activation="tanh",
           d_outputs="sequence", with_state=True):
    dtype = problem.x.dtype
    opts = dict(**problem.options(), go_backwards=go_backwards, activation=activation)
    expected = reference.forward(*problem.arrays(), **opts, return_sequences=return_sequences)
    dout_mode = {"none": 0, "sequence": 1, "last": 2}[d_outputs]
    forward_plan, backward_plan = _plans(kernels, problem, activation=activation,
                                         return_sequences=return_sequences, dout_mode=dout_mode)
    assert_close(kernels.forward(*problem.arrays(), **opts, return_sequences=return_sequences),
                 expected, dtype)
    # the plan ran (a plan that does not fit falls back to the other paths silently)
    assert (kernels.last_plan().path == "registers") == (forward_plan is not None)
    seq, state = reference.forward(*problem.arrays(), **opts)
    d_out = {"sequence": rng.normal(size=seq.shape).astype(dtype),
             "last": rng.normal(size=state.shape).astype(dtype), "none": None}[d_outputs]
    d_state = rng.normal(size=state.shape).astype(dtype) if with_state else None
    args = (*problem.arrays(), seq, d_out, d_state)
    assert_close(kernels.backward(*args, **opts), reference.backward(*args, **opts), dtype)
    assert (kernels.last_plan().path == "registers") == (backward_plan is not None)


@pytest.mark.parametrize("dtype,masked,dropout,go_backwards,use_bias,return_sequences", [
    (np.float64, True, True, False, True, True),  # in place: x @ kernel + bias in the outputs
    (np.float64, True, False, True, False, False),  # the kept workspace
    (np.float64, False, True, True, True, True),
    (np.float32, True, True, True, True, True),
    (np.float32, False, False, False, False, False),
])
def test_forward_and_backward_match_reference(registers, rng, dtype, masked, dropout, go_backwards, use_bias,
                                              return_sequences):
    problem = make_problem(rng, batch=3, steps=5, features=3, units=5, dtype=dtype, masked=masked,
                           dropout=dropout, use_bias=use_bias)
    plans = _plans(registers, problem, return_sequences=return_sequences)
    assert plans[0].shape == (8, 4, 1, 4) and plans[1].shape == (8, 4, 1, 4)  # 2 chunks of 4 steps
    _check(registers, rng, problem, go_backwards=go_backwards, return_sequences=return_sequences)


@pytest.mark.parametrize("rows,weights,staged", [(2, 4, 1), (4, 8, 1), (2, 2, 4)])
def test_several_rows_per_block(registers, rng, rows, weights, staged):
    """Rows per block: lanes own rows ``r % lanes`` (2 rows on 2 lanes; 4 rows on one lane; 2 rows
    on 4 lanes), the last block partly past the batch; chunks of 1, 1 and 8 steps."""
    config.set(CUDA_REGISTERS_ROWS=rows, CUDA_REGISTERS_WEIGHTS=weights, CUDA_REGISTERS_STAGED=staged)
    problem = make_problem(rng, batch=3, steps=5, features=2, units=7, masked=True, dropout=True)
    plan = _plans(registers, problem)[0]
    assert (plan.blocks, plan.shape.rows) == (-(-3 // rows), rows)
    _check(registers, rng, problem, go_backwards=True)


@pytest.mark.parametrize("d_outputs,with_state", [("last", False), ("none", True), ("last", True)])
def test_output_gradient_kinds(registers, rng, d_outputs, with_state):
    problem = make_problem(rng, batch=2, steps=4, features=2, units=4, masked=True, dropout=True)
    _check(registers, rng, problem, d_outputs=d_outputs, with_state=with_state)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation(registers, rng, activation):
    """Forward: every activation. Backward: registers where the derivative is a function of the
    output, else the other paths (no plan)."""
    from simplernn_numba.kernels.cuda.activation import FROM_OUTPUT

    problem = make_problem(rng, batch=2, steps=3, features=2, units=3, masked=True, scale=0.8)
    forward_plan, backward_plan = _plans(registers, problem, activation=activation)
    assert forward_plan is not None
    assert (backward_plan is not None) == (A.code(activation) in FROM_OUTPUT)
    _check(registers, rng, problem, activation=activation)


def test_fully_masked_rows_and_unit_counts(registers, rng):
    """A row never unmasked keeps its state and outputs zeros; U = 1 and U = 8 (no padding)."""
    for units in (1, 8):
        problem = make_problem(rng, batch=3, steps=4, features=2, units=units, masked=True, dropout=True)
        problem.mask[2] = False
        out, state = registers.forward(*problem.arrays(), **problem.options())
        assert not out[0].any() and not out[2].any()
        np.testing.assert_array_equal(state[[0, 2]], problem.initial_state[[0, 2]])
        _check(registers, rng, problem, go_backwards=units == 1)


def test_device_arrays_in_device_arrays_out(registers, rng):
    from numba import cuda

    problem = make_problem(rng, batch=2, steps=3, features=2, units=3, masked=True, dropout=True)
    expected = reference.forward(*problem.arrays(), **problem.options())
    on_gpu = [cuda.to_device(a) for a in problem.arrays()]
    opts = {k: cuda.to_device(v) for k, v in problem.options().items()}
    out, state = registers.forward(*on_gpu, **opts)
    assert is_device_array(out) and is_device_array(state)
    assert_close((out, state), expected, np.float64)
    d_out = rng.normal(size=expected[0].shape)
    grads = registers.backward(*on_gpu, out, cuda.to_device(d_out), None, **opts)
    assert all(is_device_array(g) for g in grads.values())
    assert_close(grads, reference.backward(*problem.arrays(), expected[0], d_out, None, **problem.options()),
                 np.float64)


def test_plan_rule(registers, monkeypatch):
    """U rounded up to a power of two, ``bucket / weights`` lanes a column; no plan past 1024 threads,
    with zero steps, or when turned off; chunks halve until the static shared memory fits."""
    from simplernn_numba.kernels.cuda import plan as plans

    f64 = np.dtype(np.float64)

    def plan(units, steps=10, batch=4, **settings):
        with config.override(**settings):
            return plans.registers_forward_plan(batch, steps, 3, units, f64, A.TANH, False, False, True)

    defaults = dict(CUDA_REGISTERS_WEIGHTS=16, CUDA_REGISTERS_STAGED=4)
    assert plan(5, **defaults).shape == (8, 1, 1, 4)
    assert plan(64, **defaults).shape == (64, 4, 1, 16)  # 256 threads of 16 weights
    assert plan(128, **defaults).shape[:2] == (128, 8)  # 1024 threads
    assert plan(129, **defaults) is None  # 256 x 16 = 4096 threads
    assert plan(5, steps=0) is None
    assert plan(5, CUDA_REGISTERS=False) is None
    assert plan(5, CUDA_REGISTERS_ROWS=4).shape.rows == 4
    # 64 units, 4 lanes, 4 loads: 16 steps a chunk, 2 x 16 x 64 float64 staged (16 KiB) + states
    full = plans._registers_forward.__wrapped__  # uncached: the limit is part of the key anyway
    with config.override(CUDA_SHARED_MEMORY_LIMIT=12 * 1024, **defaults):
        assert full(4, 64, f64, A.TANH, False, False, True, plans._settings()).shape.stage_steps == 8
    with config.override(CUDA_SHARED_MEMORY_LIMIT=1024, **defaults):
        assert full(4, 64, f64, A.TANH, False, False, True, plans._settings()) is None


def test_auto_rows_rule(registers, monkeypatch):
    """(As on a GPU.) Rows per block double until every block of the batch is resident at once,
    up to ``CUDA_REGISTERS_MAX_ROWS``; a shape the compiled kernel cannot run gives no plan."""
    from simplernn_numba.kernels.cuda import plan as plans

    monkeypatch.setattr(plans, "simulated", lambda: False)
    monkeypatch.setattr(plans, "resident_blocks", lambda kernel, threads: 10)
    monkeypatch.setattr(plans, "fits", lambda kernel, threads: True)
    f32 = np.dtype(np.float32)

    def plan(batch, **settings):
        with config.override(CUDA_REGISTERS_ROWS="auto", CUDA_REGISTERS_WEIGHTS=16, **settings):
            return plans.registers_forward_plan(batch, 10, 3, 64, f32, A.TANH, False, False, True)

    assert plan(10).shape.rows == 1
    assert (plan(11).shape.rows, plan(11).blocks) == (2, 6)
    assert plan(75).shape.rows == 8
    assert plan(1000).shape.rows == 8  # CUDA_REGISTERS_MAX_ROWS
    assert plan(1000, CUDA_REGISTERS_MAX_ROWS=2).shape.rows == 2
    monkeypatch.setattr(plans, "fits", lambda kernel, threads: False)
    plans._registers_forward.cache_clear()
    assert plan(12) is None


def test_off_gives_the_other_paths(registers, rng, monkeypatch):
    """``CUDA_REGISTERS=False``: the rows / persistent / per-step paths, which never call the
    register-resident launches."""
    from simplernn_numba.kernels.cuda import backward_pass, forward_pass

    def refuse(*args, **kwargs):
        raise AssertionError("register-resident path taken")

    monkeypatch.setattr(forward_pass, "_registers", refuse)
    monkeypatch.setattr(backward_pass, "_registers", refuse)
    config.set(CUDA_REGISTERS=False)
    problem = make_problem(rng, batch=2, steps=3, features=2, units=3, masked=True)
    _check(registers, rng, problem)
