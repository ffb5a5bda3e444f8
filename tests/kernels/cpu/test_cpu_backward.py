"""CPU backward kernel (BPTT): finite differences, the NumPy reference, PyTorch autograd, determinism."""

import itertools
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

from simplernn_numba.kernels import config, cpu, reference
from simplernn_numba.kernels.cpu import backward_pass, gemm
from simplernn_numba.kernels.cpu.plan import Plan
from simplernn_numba.testing import (
    ACTIVATIONS,
    assert_gradients_close,
    make_problem,
    numeric_gradients,
    tolerance,
)

FLAGS = ("masked", "dropout", "go_backwards", "return_sequences", "with_d_state", "use_bias")
GRID = list(itertools.product([True, False], repeat=len(FLAGS)))
#: Activations of each kind checked at float32 too: the vectorised tanh, piecewise ones, smooth
#: ones, one whose derivative needs the pre-activation, an unbounded one.
FLOAT32_ACTIVATIONS = ("tanh", "relu", "sigmoid", "leaky_relu", "gelu", "exponential")
#: Gradient keys, in the order of ``Problem.arrays()``.
KEYS = ("inputs", "kernel", "recurrent_kernel", "bias", "initial_state")


def _config(rng, activation, masked, dropout, go_backwards, return_sequences, with_d_state, use_bias,
            dtype=np.float64, **sizes):
    # exponential feeds its output back into itself: keep the weights small so nothing overflows
    problem = make_problem(rng, dtype=dtype, masked=masked, dropout=dropout, use_bias=use_bias,
                           scale=0.15 if activation == "exponential" else 0.4, **sizes)
    batch, steps, _ = problem.x.shape
    units = problem.kernel.shape[1]
    out_shape = (batch, steps, units) if return_sequences else (batch, units)
    d_output = rng.normal(size=out_shape).astype(dtype)
    d_state = rng.normal(size=(batch, units)).astype(dtype) if with_d_state else None
    options = dict(problem.options(), go_backwards=go_backwards, activation=activation)
    return problem, d_output, d_state, options


def _backward(module, problem, d_output, d_state, options):
    outputs, _ = reference.forward(*problem.arrays(), **options, return_sequences=True)
    return module.backward(*problem.arrays(), outputs, d_output, d_state, **options)


def _check_against_finite_differences(problem, d_output, d_state, options):
    params = dict(zip(KEYS, problem.arrays()))

    def loss(p):
        out, state = reference.forward(p["inputs"], p["kernel"], p["recurrent_kernel"], p["bias"],
                                       p["initial_state"], **options,
                                       return_sequences=d_output.ndim == 3)
        return float((out * d_output).sum() + (0 if d_state is None else (state * d_state).sum()))

    analytic = _backward(cpu, problem, d_output, d_state, options)
    assert_gradients_close(analytic, numeric_gradients(loss, params))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_matches_finite_differences(activation):
    """Every flag on (the flag grid below covers each flag's combinations with tanh: each
    activation is a compiled variant of its own, and so is each set of optional arrays)."""
    rng = np.random.default_rng(ACTIVATIONS.index(activation))
    _check_against_finite_differences(*_config(rng, activation, *GRID[0]))


@pytest.mark.parametrize("flags", GRID, ids=lambda f: "-".join(n for n, v in zip(FLAGS, f) if v) or "plain")
def test_flag_grid_matches_finite_differences(flags):
    rng = np.random.default_rng(GRID.index(flags))
    _check_against_finite_differences(*_config(rng, "tanh", *flags))


@pytest.mark.parametrize("dtype,activation", [(np.float64, a) for a in ACTIVATIONS]
                         + [(np.float32, a) for a in FLOAT32_ACTIVATIONS])
def test_cpu_matches_reference(dtype, activation):
    """Every activation at float64, activations of each kind at float32 (the kernels' code
    differs by dtype for tanh alone). Every flag on, and every flag off but the bias, take turns
    over the activations (each is a compiled variant per activation; the flag grid above runs
    every combination with tanh): at float64 every activation with every flag on (the
    finite-difference test's variant); at float32 each activation with one of the two in turn,
    tanh with both."""
    rng = np.random.default_rng(7)
    rtol, atol = tolerance(dtype)
    if dtype == np.float64:
        flag_sets = (GRID[0],)
    else:
        turn = FLOAT32_ACTIVATIONS.index(activation) % 2
        flag_sets = (GRID[0], GRID[-2]) if activation == "tanh" else (GRID[-2] if turn else GRID[0],)
    for flags in flag_sets:
        problem, d_output, d_state, options = _config(rng, activation, *flags, dtype=dtype)
        ours = _backward(cpu, problem, d_output, d_state, options)
        ref = _backward(reference, problem, d_output, d_state, options)
        for key in KEYS:
            if ref[key] is None:
                assert ours[key] is None
                continue
            assert ours[key].dtype == np.dtype(dtype) and ours[key].shape == ref[key].shape
            assert np.isfinite(ref[key]).all()
            np.testing.assert_allclose(ours[key], ref[key], rtol=rtol, atol=atol * 10, err_msg=key)


#: config settings that send the small problems below down each backward path.
PATHS = {
    "gemm": dict(ROWS_WEIGHT_BYTES=0),  # with a mask, recurrent dropout or pre-activations
    "rows_parallel": dict(LANES_MAX_UNITS=0, BACKWARD_SERIAL_WORK=0),
    "lanes": dict(LANES_MIN_BATCH=1, LANES_MAX_UNITS=1 << 30),
    "lanes_parallel": dict(LANES_MIN_BATCH=1, LANES_MAX_UNITS=1 << 30, BACKWARD_SERIAL_WORK=0),
}


#: The activations on the paths below (a derivative from the output, from the pre-activation,
#: an exp): on each path they take turns over the four mask and dropout combinations, each
#: combination with one of them (each activation and each combination is a compiled variant).
PATH_ACTIVATIONS = ("tanh", "gelu", "elu")
#: Where the turns start on each kernel (both lanes paths run one kernel: the same variants).
PATH_TURN = {"gemm": 0, "lanes": 1, "lanes_parallel": 1, "rows_parallel": 2}


@pytest.mark.parametrize("activation", PATH_ACTIVATIONS)
@pytest.mark.parametrize("path", sorted(PATHS))
def test_other_recurrence_paths_match_reference(activation, path):
    # the small problems above run the serial per-row recurrence; force the others
    rng = np.random.default_rng(3)
    turn = PATH_ACTIVATIONS.index(activation)
    for k, flags in enumerate(GRID[::21]):  # the four mask and dropout combinations
        if (k + PATH_TURN[path]) % len(PATH_ACTIVATIONS) != turn:
            continue
        problem, d_output, d_state, options = _config(rng, activation, *flags, batch=5, steps=7)
        with config.override(**PATHS[path]):
            ours = _backward(cpu, problem, d_output, d_state, options)
        plan = cpu.last_plan()
        if path == "gemm":
            plain = not (flags[0] or flags[1]) and activation != "gelu"  # masked, dropout, preact
            assert plan.path == ("gemm_plain" if plain else "gemm"), plan
        else:
            assert plan.path == path.split("_")[0] and (plan.runs > 1) == path.endswith("parallel"), plan
        ref = _backward(reference, problem, d_output, d_state, options)
        for key in KEYS:
            if ref[key] is not None:
                np.testing.assert_allclose(ours[key], ref[key], rtol=1e-10, atol=1e-12, err_msg=key)


def test_every_tile_shape_of_the_backward_rows_path_matches_reference(monkeypatch):
    """Each tile shape the rows path takes (rows by 32- or 64-byte vectors) on the backward rows
    path, with padded rows and units (42 units: no whole number of vectors; 5 rows), a mask and
    dropout."""
    from simplernn_numba.kernels.cpu import plan as plans
    from simplernn_numba.kernels.cpu.products import TILE_SHAPES, rows_path_shape

    rng = np.random.default_rng(5)
    problem, d_output, d_state, options = _config(rng, "tanh", True, True, False, True, True, True,
                                                  batch=5, steps=6, features=7, units=42)
    ref = _backward(reference, problem, d_output, d_state, options)
    for shape in filter(rows_path_shape, range(len(TILE_SHAPES))):
        monkeypatch.setattr(plans, "tile_shape", lambda *args, shape=shape: shape)
        with config.override(LANES_MAX_UNITS=0):
            ours = _backward(cpu, problem, d_output, d_state, options)
        assert cpu.last_plan() == Plan("rows", 1, shape), cpu.last_plan()
        for key in KEYS:
            np.testing.assert_allclose(ours[key], ref[key], rtol=1e-10, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("activation", ["tanh", "relu", "elu"])
@pytest.mark.parametrize("batch", [1, 4])
def test_per_step_gemm_path_without_mask_or_dropout_matches_reference(monkeypatch, activation, batch):
    """Without a mask, recurrent dropout or pre-activations the per-step GEMM path takes one pass
    per step (and the bias gradient with it), and in input order computes the recurrent-kernel
    gradient from the outputs without gathering the previous states."""
    steps_taken, gathered = [], []
    step, gather = gemm._plain_step, backward_pass._previous_states
    monkeypatch.setattr(gemm, "_plain_step", lambda *a: steps_taken.append(a[1]) or step(*a))
    monkeypatch.setattr(backward_pass, "_previous_states", lambda *a: gathered.append(1) or gather(*a))
    rng = np.random.default_rng(11)
    for go_backwards, return_sequences, with_d_state in itertools.product([False, True], repeat=3):
        steps_taken.clear()
        gathered.clear()
        problem, d_output, d_state, options = _config(
            rng, activation, False, False, go_backwards, return_sequences, with_d_state, True,
            batch=batch, steps=6)
        with config.override(ROWS_WEIGHT_BYTES=0):
            ours = _backward(cpu, problem, d_output, d_state, options)
        assert cpu.last_plan().path == "gemm_plain"
        ref = _backward(reference, problem, d_output, d_state, options)
        for key in KEYS:
            np.testing.assert_allclose(ours[key], ref[key], rtol=1e-10, atol=1e-12, err_msg=key)
        assert steps_taken == [5, 4, 3, 2, 1, 0]
        assert len(gathered) == go_backwards  # reversed processing order: the states are gathered


@pytest.mark.parametrize("activation", ["tanh", "relu", "elu"])
@pytest.mark.parametrize("batch", [8, 9])
def test_large_kernels_without_mask_or_dropout_take_the_panels_path(activation, batch):
    """From ``PANELS_MIN_BATCH`` rows the backward recurrence with a large recurrent kernel and
    neither a mask, recurrent dropout nor pre-activations runs on packed panels of
    ``recurrent_kernel.T``, runs of quads of rows over the threads: the reference's gradients,
    and the per-step BLAS path's (taken below ``PANELS_MIN_BATCH`` rows) to rounding."""
    rng = np.random.default_rng(12)
    for go_backwards, return_sequences, with_d_state in itertools.product([False, True], repeat=3):
        problem, d_output, d_state, options = _config(
            rng, activation, False, False, go_backwards, return_sequences, with_d_state, True,
            batch=batch, steps=6)
        with config.override(ROWS_WEIGHT_BYTES=0):
            ours = _backward(cpu, problem, d_output, d_state, options)
            assert cpu.last_plan() == Plan("panels", min(numba.get_num_threads(), 3 if batch == 9 else 2))
            ref = _backward(reference, problem, d_output, d_state, options)
            with config.override(PANELS_MIN_BATCH=1 << 30):
                blas = _backward(cpu, problem, d_output, d_state, options)
                assert cpu.last_plan().path == "gemm_plain"
        for key in KEYS:
            np.testing.assert_allclose(ours[key], ref[key], rtol=1e-10, atol=1e-12, err_msg=key)
            np.testing.assert_allclose(ours[key], blas[key], rtol=1e-10, atol=1e-12, err_msg=key)


def test_recurrent_gradient_in_order_matches_gathered_previous_states():
    rng = np.random.default_rng(12)
    for batch, steps in ((1, 1), (3, 1), (1, 5), (4, 6)):
        outputs, dz = rng.normal(size=(2, batch, steps, 3))
        initial_state = rng.normal(size=(batch, 3))
        prev = np.concatenate((initial_state[:, None], outputs[:, :-1]), axis=1)
        expected = prev.reshape(-1, 3).T @ dz.reshape(-1, 3)
        np.testing.assert_allclose(gemm.recurrent_gradient_in_order(outputs, initial_state, dz),
                                   expected, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ PyTorch autograd parity
def _torch_loop(torch, problem, options, return_sequences, activation):
    """The same recurrence (masks, dropout, go_backwards) written as a torch loop."""
    t = {k: None if v is None else torch.tensor(v, requires_grad=True)
         for k, v in zip(KEYS, problem.arrays())}
    act = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "elu": torch.nn.functional.elu,
           "selu": torch.selu, "softplus": torch.nn.functional.softplus, "gelu": torch.nn.functional.gelu,
           "silu": torch.nn.functional.silu, "mish": torch.nn.functional.mish,
           "softsign": torch.nn.functional.softsign}[activation]
    x, h = t["inputs"], t["initial_state"]
    mask = None if options["mask"] is None else torch.tensor(options["mask"])
    in_drop = None if options["input_dropout"] is None else torch.tensor(options["input_dropout"])
    rec_drop = None if options["recurrent_dropout"] is None else torch.tensor(options["recurrent_dropout"])
    steps = x.shape[1]
    prev_out, outs = torch.zeros_like(h), []
    for t_ in (range(steps - 1, -1, -1) if options["go_backwards"] else range(steps)):
        x_t = x[:, t_] if in_drop is None else x[:, t_] * in_drop
        h_in = h if rec_drop is None else h * rec_drop
        z = x_t @ t["kernel"] + h_in @ t["recurrent_kernel"]
        if t["bias"] is not None:
            z = z + t["bias"]
        new = act(z)
        if mask is None:
            h, out = new, new
        else:
            keep = mask[:, t_][:, None]
            h, out = torch.where(keep, new, h), torch.where(keep, new, prev_out)
        prev_out = out
        outs.append(out)
    return t, (torch.stack(outs, 1) if return_sequences else prev_out), h


TORCH_ACTIVATIONS = ("tanh", "relu", "sigmoid", "elu", "selu", "softplus", "gelu", "silu", "mish",
                     "softsign")


@pytest.mark.parametrize("activation", TORCH_ACTIVATIONS)
def test_matches_torch_autograd_loop(activation):
    """Every flag on (the finite-difference test's variant); tanh also with a mask without
    dropout, relu with dropout without a mask (the mask and dropout code is the same for every
    activation, and each activation and set of optional arrays is a compiled variant of its own:
    the flag grid above runs every set with tanh)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    for flags in (GRID[0], *{"tanh": (GRID[21],), "relu": (GRID[42],)}.get(activation, ())):
        problem, d_output, d_state, options = _config(rng, activation, *flags)
        params, out, state = _torch_loop(torch, problem, options, d_output.ndim == 3, activation)
        loss = (out * torch.tensor(d_output)).sum()
        if d_state is not None:
            loss = loss + (state * torch.tensor(d_state)).sum()
        loss.backward()
        ours = _backward(cpu, problem, d_output, d_state, options)
        for key, tensor in params.items():
            if tensor is not None:
                np.testing.assert_allclose(ours[key], tensor.grad.numpy(), rtol=1e-9, atol=1e-12,
                                           err_msg=key)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_matches_torch_nn_rnn(nonlinearity):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    problem, d_output, d_state, options = _config(rng, nonlinearity, False, False, False, True, True, True,
                                                  batch=4, steps=9, features=3, units=5)
    rnn = torch.nn.RNN(3, 5, nonlinearity=nonlinearity, batch_first=True).double()
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.tensor(problem.kernel.T))
        rnn.weight_hh_l0.copy_(torch.tensor(problem.recurrent_kernel.T))
        rnn.bias_ih_l0.copy_(torch.tensor(problem.bias * 0.25))
        rnn.bias_hh_l0.copy_(torch.tensor(problem.bias * 0.75))
    x = torch.tensor(problem.x, requires_grad=True)
    h0 = torch.tensor(problem.initial_state[None], requires_grad=True)
    out, h_n = rnn(x, h0)
    ((out * torch.tensor(d_output)).sum() + (h_n[0] * torch.tensor(d_state)).sum()).backward()
    ours = _backward(cpu, problem, d_output, d_state, options)
    # our one bias is torch's bias_ih + bias_hh: its gradient is the gradient of each
    expected = [("inputs", x.grad), ("initial_state", h0.grad[0]), ("kernel", rnn.weight_ih_l0.grad.T),
                ("recurrent_kernel", rnn.weight_hh_l0.grad.T), ("bias", rnn.bias_ih_l0.grad),
                ("bias", rnn.bias_hh_l0.grad)]
    for key, value in expected:
        np.testing.assert_allclose(ours[key], value.numpy(), rtol=1e-9, atol=1e-12, err_msg=key)


# ------------------------------------------------------------------ determinism
_DETERMINISM_SCRIPT = textwrap.dedent("""
    import hashlib, sys
    import numpy as np
    sys.path.insert(0, "tests")
    from simplernn_numba.testing import make_problem
    from simplernn_numba.kernels import config, cpu, reference
    digest = hashlib.sha256()
    config.set(BACKWARD_SERIAL_WORK=0, BLAS_SERIAL_MACS=0)  # parallel recurrences and products
    for rows_bytes, lanes_batch in ((0, 1 << 40), (1 << 40, 1 << 40), (1 << 40, 1)):
        config.set(ROWS_WEIGHT_BYTES=rows_bytes, LANES_MIN_BATCH=lanes_batch)
        p = make_problem(np.random.default_rng(0), batch=9, steps=12, features=5, units=7,
                         masked=True, dropout=True)
        out, _ = reference.forward(*p.arrays(), **p.options())
        d_out = np.random.default_rng(1).normal(size=out.shape)
        grads = cpu.backward(*p.arrays(), out, d_out, None, **p.options(), activation="tanh")
        for key in sorted(grads):
            digest.update(grads[key].tobytes())
    print(digest.hexdigest())
""")


def test_gradients_identical_with_one_and_two_threads():
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
    digests = []
    for threads in ("1", "2"):
        env = dict(os.environ, NUMBA_NUM_THREADS=threads, OPENBLAS_NUM_THREADS=threads,
                   PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
        result = subprocess.run([sys.executable, "-c", _DETERMINISM_SCRIPT], cwd=root, env=env,
                                capture_output=True, text=True, check=True)
        digests.append(result.stdout.strip())
    assert digests[0] == digests[1] and len(digests[0]) == 64
