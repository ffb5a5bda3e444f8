"""Real-GPU tests (marked ``gpu``; skipped without a GPU and under the simulator).

The persistent cooperative kernels synchronise the whole grid between steps,
which the simulator cannot check (it runs one block): here they are compared
with the per-step kernels at realistic sizes; the rows kernels run with more
than 48 KiB of shared memory (an opt-in the simulator does not have); and
everything is compared with cuDNN (``torch.nn.RNN``) when torch sees the GPU.
"""

import numpy as np
import pytest
from cuda_cases import assert_close, host, real_gpu

from simplernn_numba.kernels import config, reference
from simplernn_numba.kernels.device_arrays import is_device_array
from simplernn_numba.testing import make_problem

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(
    not real_gpu(), reason="needs a real CUDA GPU (none found, or the simulator is on)")]


@pytest.fixture
def gpu_kernels():
    from simplernn_numba.kernels import cuda as kernels

    config.reset()
    yield kernels
    config.reset()


def _run(kernels, problem, path, go_backwards=False):
    """Forward and backward on ``path``: "registers", "rows", "persistent" (or True), "step" (or
    False)."""
    config.set(CUDA_REGISTERS=path == "registers", CUDA_ROWS=path == "rows")
    config.set(CUDA_PERSISTENT=path in ("persistent", True))
    out, state = kernels.forward(*problem.arrays(), **problem.options(), go_backwards=go_backwards)
    d_out = np.random.default_rng(0).normal(size=out.shape).astype(out.dtype)
    grads = kernels.backward(*problem.arrays(), out, d_out, state, **problem.options(),
                             go_backwards=go_backwards)
    return out, state, grads


def _float64(problem):
    """The problem with every float array in float64 (masks stay bool)."""
    return type(problem)(**{k: v if v is None or v.dtype == bool else v.astype(np.float64)
                            for k, v in vars(problem).items()})


def _assert_near(ours, exact, rel=1e-4):
    """float32 results against float64 ones, as relative errors of whole arrays: rounding in a
    chaotic recurrence leaves ~1e-5, a race or a wrong index ~1e-1."""
    pairs = ((ours[k], exact[k]) for k in exact) if isinstance(exact, dict) else zip(ours, exact)
    for a, b in pairs:
        if b is None:
            continue
        a = host(a).astype(np.float64)
        assert np.isfinite(a).all()
        assert np.linalg.norm(a - b) <= rel * max(np.linalg.norm(b), 1e-30)


@pytest.mark.parametrize("batch,steps,features,units,blocks", [
    (1, 50, 16, 64, 1), (16, 30, 32, 100, 1), (4, 30, 32, 300, None), (8, 20, 64, 512, None),
    (3, 10, 8, 1000, None), (64, 20, 32, 128, None),
])
def test_persistent_and_per_step_match_float64(gpu_kernels, batch, steps, features, units, blocks):
    """One block (block barrier) or a grid (grid barrier) per the plan; both paths near float64."""
    problem = make_problem(np.random.default_rng(units), batch=batch, steps=steps, features=features,
                           units=units, dtype=np.float32, masked=True, dropout=True, scale=0.1)
    kernel = gpu_kernels.persistent.forward_kernel(np.dtype(np.float32))
    config.set(CUDA_PERSISTENT=True, CUDA_ROWS=False)
    plan = gpu_kernels.plan.persistent_plan(kernel, batch, units, 4)
    assert plan is not None and (plan.blocks == 1) == (blocks == 1)
    exact = _float64(problem)
    out, state = reference.forward(*exact.arrays(), **exact.options(), go_backwards=True)
    d_out = np.random.default_rng(0).normal(size=out.shape)
    grads = reference.backward(*exact.arrays(), out, d_out, state, **exact.options(), go_backwards=True)
    for persistent in (True, False):
        ours = _run(gpu_kernels, problem, persistent, go_backwards=True)
        _assert_near(ours[:2], (out, state))
        _assert_near(ours[2], grads)


@pytest.mark.parametrize("batch,steps,features,units,dtype,rows_per_block", [
    (1, 60, 16, 64, np.float32, "auto"), (16, 30, 32, 100, np.float32, "auto"),
    (64, 20, 32, 128, np.float32, "auto"),  # 64 KiB + states: shared memory beyond 48 KiB (opt-in)
    (3, 20, 16, 200, np.float32, "auto"), (40, 12, 8, 48, np.float32, 8),
    (5, 20, 16, 128, np.float64, 2), (300, 6, 8, 32, np.float32, "auto"),
    (2, 10, 2000, 100, np.float32, "auto"),  # the input kernel (800 KB) read from global memory
])
@pytest.mark.parametrize("lanes", [1, 4, 8])
def test_rows_kernels_match_float64(gpu_kernels, batch, steps, features, units, dtype, rows_per_block,
                                    lanes):
    """Batch rows per block with all of U in shared memory, against float64; forward with one
    thread per (row, unit) pair or a group of ``lanes`` (warp shuffles, real GPUs only)."""
    config.set(CUDA_ROWS=True, CUDA_ROWS_PER_BLOCK=rows_per_block, CUDA_ROWS_LANES=lanes)
    kernel = gpu_kernels.rows.forward_kernel(np.dtype(dtype))
    plan = gpu_kernels.plan.rows_plan(kernel, batch, units, np.dtype(dtype).itemsize, 4)
    assert plan is not None, "all of U should fit in one block's shared memory here"
    problem = make_problem(np.random.default_rng(units), batch=batch, steps=steps, features=features,
                           units=units, dtype=dtype, masked=True, dropout=True, scale=0.1)
    problem.mask[0, :] = False
    exact = _float64(problem)
    for go_backwards in (False, True):
        out, state = reference.forward(*exact.arrays(), **exact.options(), go_backwards=go_backwards)
        d_out = np.random.default_rng(0).normal(size=out.shape)
        grads = reference.backward(*exact.arrays(), out, d_out, state, **exact.options(),
                                   go_backwards=go_backwards)
        ours = _run(gpu_kernels, problem, "rows", go_backwards=go_backwards)
        _assert_near(ours[:2], (out, state), rel=1e-4 if dtype == np.float32 else 1e-10)
        _assert_near(ours[2], grads, rel=1e-4 if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("path", ["registers", "rows", "persistent", "step"])
def test_realistic_shape_matches_reference_float64(gpu_kernels, path):
    problem = make_problem(np.random.default_rng(1), batch=6, steps=40, features=24, units=96,
                           masked=True, dropout=True, scale=0.15)
    out, state, grads = _run(gpu_kernels, problem, path)
    assert_close((out, state), reference.forward(*problem.arrays(), **problem.options()), np.float64)
    d_out = np.random.default_rng(0).normal(size=out.shape)
    ref = reference.backward(*problem.arrays(), out, d_out, state, **problem.options())
    assert_close(grads, ref, np.float64)


def test_auto_rule(gpu_kernels):
    rows = gpu_kernels.rows.forward_kernel(np.dtype(np.float32))
    assert gpu_kernels.plan.rows_plan(rows, 1, 64, 4, 2).blocks == 1
    assert gpu_kernels.plan.rows_plan(rows, 64, 128, 4, 2).blocks == 64  # 64 KiB of U: opted in
    assert gpu_kernels.plan.rows_plan(rows, 8, 512, 4, 2) is None  # 1 MiB of U
    kernel = gpu_kernels.persistent.forward_kernel(np.dtype(np.float32))
    assert gpu_kernels.plan.persistent_plan(kernel, 1, 64, 4).blocks == 1
    assert gpu_kernels.plan.persistent_plan(kernel, 8, 256, 4).blocks > 1
    assert gpu_kernels.plan.persistent_plan(kernel, 128, 256, 4).blocks > 1
    assert gpu_kernels.plan.persistent_plan(kernel, 129, 256, 4) is None


def test_large_grid_stride_and_tiles(gpu_kernels):
    problem = make_problem(np.random.default_rng(2), batch=70, steps=9, features=130, units=200,
                           masked=True, dropout=True, scale=0.1)
    config.set(CUDA_MAX_BLOCKS=3)
    out, state, grads = _run(gpu_kernels, problem, "step")
    assert_close((out, state), reference.forward(*problem.arrays(), **problem.options()), np.float64)
    d_out = np.random.default_rng(0).normal(size=out.shape)
    ref = reference.backward(*problem.arrays(), out, d_out, state, **problem.options())
    assert_close(grads, ref, np.float64)


def _torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch does not see the GPU (CPU build of torch?)")
    return torch


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_matches_torch_cudnn_forward_and_backward(gpu_kernels, monkeypatch, nonlinearity):
    torch = _torch_cuda()
    # cuDNN's RNN runs in TF32 by default on this hardware (errors ~1e-3): compare full float32
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    rng = np.random.default_rng(3)
    batch, steps, features, units = 8, 50, 32, 128
    problem = make_problem(rng, batch=batch, steps=steps, features=features, units=units,
                           dtype=np.float32, scale=0.1)
    rnn = torch.nn.RNN(features, units, nonlinearity=nonlinearity, batch_first=True).cuda()
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(problem.kernel.T.copy()))
        rnn.weight_hh_l0.copy_(torch.from_numpy(problem.recurrent_kernel.T.copy()))
        rnn.bias_ih_l0.copy_(torch.from_numpy(problem.bias))
        rnn.bias_hh_l0.zero_()
    x = torch.from_numpy(problem.x).cuda().requires_grad_(True)
    h0 = torch.from_numpy(problem.initial_state).cuda()[None].requires_grad_(True)
    seq, h_n = rnn(x, h0)
    d_out = torch.from_numpy(rng.normal(size=(batch, steps, units)).astype(np.float32)).cuda()
    seq.backward(d_out)

    # torch CUDA tensors go in with zero copies; results come back as device arrays
    out, state = gpu_kernels.forward(x.detach(), *problem.arrays()[1:4], h0.detach()[0],
                                     activation=nonlinearity)
    assert is_device_array(out)
    grads = gpu_kernels.backward(x.detach(), *problem.arrays()[1:4], h0.detach()[0], out, d_out, None,
                                 activation=nonlinearity)
    theirs = {"outputs": seq, "inputs": x.grad, "initial_state": h0.grad[0],
              "kernel": rnn.weight_ih_l0.grad.T, "recurrent_kernel": rnn.weight_hh_l0.grad.T,
              "bias": rnn.bias_ih_l0.grad}
    _assert_near({"outputs": out, **grads}, {k: v.detach().double().cpu().numpy() for k, v in theirs.items()})


@pytest.mark.parametrize("batch,units", [(16, 256), (33, 100)])
def test_tiled_and_simple_steps_match_float64(gpu_kernels, batch, units):
    problem = make_problem(np.random.default_rng(batch), batch=batch, steps=20, features=40, units=units,
                           dtype=np.float32, masked=True, dropout=True, scale=0.1)
    exact = _float64(problem)
    out, state = reference.forward(*exact.arrays(), **exact.options())
    d_out = np.random.default_rng(0).normal(size=out.shape)
    grads = reference.backward(*exact.arrays(), out, d_out, state, **exact.options())
    for min_batch in (1, 10**9):
        config.set(CUDA_TILED_STEP_MIN_BATCH=min_batch)
        ours = _run(gpu_kernels, problem, "step")
        _assert_near(ours[:2], (out, state))
        _assert_near(ours[2], grads)


@pytest.mark.parametrize("batch,steps,features,units,rows", [
    (1, 300, 16, 64, "auto"), (8, 100, 64, 128, "auto"), (5, 40, 8, 100, "auto"),
    (300, 20, 8, 64, "auto"), (10, 30, 16, 64, 4), (7, 30, 16, 20, 8),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_registers_match_float64(gpu_kernels, batch, steps, features, units, rows, dtype):
    """The register-resident kernels (warp shuffles, launch bounds, pointer arguments) against
    float64, forward and backward, both directions, masks and dropout; every plan fits the GPU."""
    config.set(CUDA_REGISTERS=True, CUDA_REGISTERS_ROWS=rows)
    from simplernn_numba import activations as A
    from simplernn_numba.kernels.cuda import plan as plans

    plan = plans.registers_forward_plan(batch, steps, features, units, np.dtype(dtype), A.TANH, True, True,
                                       True)
    assert plan is not None, "U <= 128 should run register-resident (0 bytes of local memory)"
    problem = make_problem(np.random.default_rng(units + batch), batch=batch, steps=steps,
                           features=features, units=units, dtype=dtype, masked=True, dropout=True, scale=0.1)
    exact = _float64(problem)
    rel = 1e-4 if dtype == np.float32 else 1e-10
    for go_backwards in (False, True):
        out, state = reference.forward(*exact.arrays(), **exact.options(), go_backwards=go_backwards)
        d_out = np.random.default_rng(0).normal(size=out.shape)
        grads = reference.backward(*exact.arrays(), out, d_out, state, **exact.options(),
                                   go_backwards=go_backwards)
        ours = _run(gpu_kernels, problem, "registers", go_backwards=go_backwards)
        _assert_near(ours[:2], (out, state), rel=rel)
        _assert_near(ours[2], grads, rel=rel)


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "linear", "gelu"])
def test_registers_other_activations_match_float64(gpu_kernels, activation):
    config.set(CUDA_REGISTERS=True)
    problem = make_problem(np.random.default_rng(5), batch=4, steps=60, features=16, units=64,
                           dtype=np.float32, masked=True, dropout=True, scale=0.1)
    exact = _float64(problem)
    out, state = reference.forward(*exact.arrays(), **exact.options(), activation=activation)
    d_out = np.random.default_rng(0).normal(size=out.shape)
    grads = reference.backward(*exact.arrays(), out, d_out, state, **exact.options(), activation=activation)
    ours = gpu_kernels.forward(*problem.arrays(), **problem.options(), activation=activation)
    _assert_near(ours, (out, state))
    ours_grads = gpu_kernels.backward(*problem.arrays(), host(ours[0]), d_out.astype(np.float32),
                                      host(ours[1]), **problem.options(), activation=activation)
    _assert_near(ours_grads, grads, rel=3e-4)


def test_registers_auto_rows_rule_on_this_gpu(gpu_kernels):
    """One row a block while the batch's blocks are all resident, more rows beyond."""
    from simplernn_numba import activations as A
    from simplernn_numba.kernels.cuda import plan as plans

    f32 = np.dtype(np.float32)
    assert plans.registers_forward_plan(1, 10, 8, 64, f32, A.TANH, False, False, True).shape.rows == 1
    big = plans.registers_forward_plan(100000, 10, 8, 64, f32, A.TANH, False, False, True)
    assert big.shape.rows == config.CUDA_REGISTERS_MAX_ROWS
    assert plans.registers_forward_plan(1, 10, 8, 256, f32, A.TANH, False, False, True) is None
