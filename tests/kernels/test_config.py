"""The kernels' settings (kernels/config.py), runs of rows over threads (kernels/cpu/launch.py)
and the warm-up command (python -m simplernn_numba compile)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numba import njit

from simplernn_numba.__main__ import PATHS, main
from simplernn_numba.kernels import config
from simplernn_numba.kernels.cpu import last_call, plan, warmup
from simplernn_numba.kernels.cpu.launch import run_all

ROOT = Path(__file__).resolve().parents[2]


def test_override_restores_and_reset_restores_defaults():
    default = config.SERIAL_WORK
    with config.override(SERIAL_WORK=0, CUDA_ROWS=False):
        assert config.SERIAL_WORK == 0 and config.CUDA_ROWS is False
        with config.override(SERIAL_WORK=5):
            assert config.SERIAL_WORK == 5
        assert config.SERIAL_WORK == 0
    assert config.SERIAL_WORK == default and config.CUDA_ROWS == config.DEFAULTS["CUDA_ROWS"]
    with pytest.raises(RuntimeError), config.override(SERIAL_WORK=1):
        raise RuntimeError  # restored after an exception too
    assert config.SERIAL_WORK == default
    config.set(SERIAL_WORK=7, LANES_MAX_UNITS=3)
    assert (config.SERIAL_WORK, config.LANES_MAX_UNITS) == (7, 3)
    config.reset()
    assert config.SERIAL_WORK == default and config.LANES_MAX_UNITS == config.DEFAULTS["LANES_MAX_UNITS"]


def test_settings_are_checked():
    with pytest.raises(KeyError, match="unknown kernel setting 'SERIAL_WROK'.*SERIAL_WORK"):
        config.set(SERIAL_WROK=0)
    with pytest.raises(ValueError, match="compile-time constant"):
        config.set(K_BLOCK=64)
    with pytest.raises(TypeError, match="SERIAL_WORK must be a number"):
        config.set(SERIAL_WORK="many")
    with pytest.raises(TypeError, match="must be a number"):
        config.set(SERIAL_WORK=True)
    assert config.SERIAL_WORK == config.DEFAULTS["SERIAL_WORK"]  # nothing set by a refused call
    assert config.COMPILE_TIME <= set(config.DEFAULTS)


@njit
def _fill(out, scale, offset, run, runs):
    out[run] = scale * run + runs + offset


@njit
def _fail_on_run(out, fail, value, run, runs):
    if run == fail:
        raise ValueError("a failing run")
    out[run] = value


@pytest.mark.parametrize("runs", [1, 2, 5])
def test_run_all_calls_every_run_once(runs):
    out = np.full(runs, -1, np.int64)
    run_all(_fill, (out, 10, 1), runs)
    assert out.tolist() == [10 * run + runs + 1 for run in range(runs)]


def test_a_run_that_raises_fails_the_call():
    out = np.zeros(3)
    with pytest.raises(RuntimeError, match="_fail_on_run failed on 1 of 3 runs"):
        run_all(_fail_on_run, (out, 1, 2.0), 3)
    assert out.tolist() == [2.0, 0.0, 2.0]  # the other runs ran
    with pytest.raises(ValueError, match="a failing run"):  # one run, on the calling thread
        run_all(_fail_on_run, (out, 0, 2.0), 1)


def test_run_kernels_compile_once_for_one_run_and_several():
    """The prange loop calls the run kernel through its address: the serial and the parallel
    calls share one compiled run kernel."""
    @njit
    def kernel(out, a, b, run, runs):
        out[run] = a + b

    out = np.zeros(4)
    run_all(kernel, (out, 1.0, 2.0), 1)
    run_all(kernel, (out, 1.0, 2.0), 4)
    assert len(kernel.signatures) == 1 and out.tolist() == [3.0] * 4


def test_compile_command_reports_each_variant(monkeypatch, capsys):
    """A line per variant, in order (the calls recorded here; the compiling is tested below)."""
    assert PATHS == warmup.PATHS
    calls = []
    monkeypatch.setattr(warmup, "_call", lambda variant, dtype, activation: calls.append(
        (variant.label, dtype, activation)))
    main(["compile", "--dtype", "float32"])
    lines = capsys.readouterr().out.splitlines()
    assert calls == [(variant.label, "float32", "tanh") for variant in warmup.INFERENCE]
    assert len(lines) == 15 and lines[-1].startswith("14 variants ready (0 compiled, 14 cached) in ")
    assert lines[0].startswith("[1/14] float32 tanh, lanes: ") and lines[0].endswith(" s (cached)")
    main(["compile", "--plan", "one_row", "--plan", "two_rows", "--plan", "panels"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[:-1]] == [
        "[1/5] float32 tanh, one row", "[2/5] float32 tanh, one row, four vectors",
        "[3/5] float32 tanh, one row, projected first", "[4/5] float32 tanh, two rows",
        "[5/5] float32 tanh, panels"]
    with pytest.raises(ValueError, match="Unknown activation 'Tanh'"):
        main(["compile", "--activation", "Tanh"])


def _label(variant) -> str:
    return variant.label.replace(", ", "-").replace(" ", "_")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variant", warmup.INFERENCE + warmup.TRAINING, ids=_label)
def test_each_common_variant_takes_its_plan(monkeypatch, variant, dtype):
    """The plan rules send each variant's call down the plan it names (with two threads)."""
    monkeypatch.setattr(plan.numba, "get_num_threads", lambda: 2)
    batch, steps, features, units = variant.shape
    itemsize = np.dtype(dtype).itemsize
    with config.override(**variant.settings):
        chosen = plan.forward_plan(batch, steps, features, units, itemsize, masked=variant.masked,
                                   recurrent_dropout=variant.dropout, training=variant.training)
        assert chosen.path == variant.path
        if variant.training:
            chosen = plan.backward_plan(batch, steps, units, itemsize, masked=variant.masked,
                                        recurrent_dropout=variant.dropout, preactivations=False)
            assert chosen.path == variant.path
    if "threads" in variant.label:
        assert chosen.runs > 1
    if "projected first" in variant.label:
        assert not chosen.fused


def test_the_compile_command_runs_a_training_step_with_every_optional_array():
    """A real warm-up call with a mask and dropout masks, forward and backward, on the plan it
    names (the command's other calls are the same code with fewer optional arrays)."""
    variant = warmup.TRAINING[1]
    assert variant.masked and variant.dropout and variant.training
    warmup._call(variant, "float64", "tanh")
    assert last_call.last_plan().path == variant.path


def test_compile_command_all_dtypes_and_training(monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(warmup, "run", lambda *args: calls.append(args) or [("v", 0.5, ["f"])])
    main(["compile", "--dtype", "all", "--training", "--activation", "relu", "--plan", "rows"])
    assert calls == [(("float32", "float64"), True, "relu", ("rows",))]
    assert capsys.readouterr().out.startswith("1 variants ready (1 compiled, 0 cached) in 0.5 s")


def test_compile_command_fills_an_empty_cache(tmp_path):
    """In a fresh cache the command compiles every variant; a later process finds them all."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "simplernn_numba", "compile", "--plan", "two_rows", "--activation",
               "linear", "--dtype", "float64"]  # a single variant
    first = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    assert "1 variants ready (1 compiled, 0 cached)" in first, first
    second = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    assert "1 variants ready (0 compiled, 1 cached)" in second, second


def test_vector_width_follows_the_cpu_or_the_environment(monkeypatch):
    from llvmlite import binding
    from numba.core import config as numba_config

    monkeypatch.delenv("SIMPLERNN_NUMBA_VECTOR_BYTES", raising=False)
    monkeypatch.setattr(numba_config, "CPU_NAME", None)
    for features, expected in (({"avx512f": True, "avx2": True}, 64), ({"avx2": True}, 32), ({}, 32)):
        monkeypatch.setattr(binding, "get_host_cpu_features", lambda f=features: f)
        assert config._vector_bytes() == expected
    # a named target (ahead-of-time, portable builds) decides by its feature string, not the host
    monkeypatch.setattr(numba_config, "CPU_NAME", "skylake-avx512")
    monkeypatch.setattr(numba_config, "CPU_FEATURES", "+avx2,+avx512f")
    assert config._vector_bytes() == 64
    monkeypatch.setattr(numba_config, "CPU_FEATURES", "+avx2")
    assert config._vector_bytes() == 32
    monkeypatch.setenv("SIMPLERNN_NUMBA_VECTOR_BYTES", "64")
    assert config._vector_bytes() == 64
    monkeypatch.setenv("SIMPLERNN_NUMBA_VECTOR_BYTES", "16")
    with pytest.raises(ValueError, match="must be 32 or 64; received '16'"):
        config._vector_bytes()
