"""Plans and launches of the register-resident kernels (:mod:`._cuda_registers`).

:func:`forward_plan` and :func:`backward_plan` choose the kernel's compile-time shape for a
problem (cached per shape and settings); :func:`forward` and :func:`backward_recurrence` run a
plan with pointer arguments and few allocations: forward is two launches (the input projection
of :mod:`._cuda_projection`, then the recurrence) and one allocation (outputs and final state
together; ``x @ kernel + bias`` is written into the outputs and overwritten there, or, when
the outputs cannot hold it, into a workspace kept between calls).

The rule (every setting in :mod:`.config`):

- ``CUDA_REGISTERS`` False -> no plan. U is rounded up to a power of two, the ``bucket``; each
  column of it gets ``lanes = bucket / CUDA_REGISTERS_WEIGHTS`` threads (at least one), so
  each thread keeps ``CUDA_REGISTERS_WEIGHTS`` entries of U in registers. No plan when the
  block (``bucket * lanes`` threads) exceeds 1024 threads: U > 128 with 16 weights a thread.
- Rows per block: ``CUDA_REGISTERS_ROWS``, or with ``"auto"`` the fewest (a power of two up to
  ``CUDA_REGISTERS_MAX_ROWS``) that let every block of the batch be resident at once (the
  multiprocessors times the blocks each holds, from the compiled kernel's registers and the
  2048 threads a multiprocessor holds); one under the simulator. More rows reuse each
  register-held weight for more rows, a resident grid avoids running the steps in waves.
- Rows and steps per chunk are rounded down to powers of two (so are bucket and lanes: the
  kernels index with shifts and masks).
- Steps per staged chunk: ``CUDA_REGISTERS_STAGED * lanes / rows`` (each thread issues about
  ``CUDA_REGISTERS_STAGED`` loads a chunk, at least one step), halved while the block's static
  shared memory exceeds ``CUDA_SHARED_MEMORY_LIMIT``; no plan if one step does not fit.
- On a GPU, no plan when the compiled kernel cannot run ``bucket * lanes`` threads per block or
  needs local memory (its weights would not stay in registers): the caller then takes the
  other paths of :mod:`.cuda`.
- Backward: only for activations whose derivative is a function of the output
  (``FROM_OUTPUT`` of :mod:`._cuda_typed`: linear, tanh, relu, sigmoid, elu, selu, softplus,
  softsign, hard_sigmoid, exponential, relu6, leaky_relu); silu, gelu, mish and hard_silu
  take the other paths.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numba import cuda

from . import config
from ._cuda_pointers import launcher, pointer, simulated
from ._cuda_projection import projection_kernel
from ._cuda_registers import Shape, backward_kernel, forward_kernel
from ._cuda_typed import FROM_OUTPUT

#: Threads of a block at most, on every CUDA GPU.
_MAX_THREADS = 1024
#: Threads a multiprocessor holds at once (compute capability 7.5 and up: 1024 to 2048; the
#: larger, so that the rows rule never asks for fewer blocks than fit).
_THREADS_PER_SM = 2048
_REGISTERS_PER_SM = 65536
_INT32_MAX = 2 ** 31 - 1


class RegistersPlan(NamedTuple):
    """A register-resident kernel's launch: ``blocks`` of ``shape.threads`` threads running
    ``shape.rows`` batch rows each; ``launch(*args)`` launches it."""

    blocks: int
    shape: Shape
    launch: Callable


def _settings() -> tuple:
    return (config.CUDA_REGISTERS, config.CUDA_REGISTERS_WEIGHTS, config.CUDA_REGISTERS_ROWS,
            config.CUDA_REGISTERS_MAX_ROWS, config.CUDA_REGISTERS_STAGED, config.CUDA_SHARED_MEMORY_LIMIT)


def _columns(units: int) -> tuple[int, int] | None:
    """(bucket, lanes) for ``units``, or None when the block would exceed 1024 threads."""
    bucket = 1 << max(0, units - 1).bit_length()
    lanes = max(1, bucket // max(1, int(config.CUDA_REGISTERS_WEIGHTS)))
    if lanes > 1 and bucket * lanes < 32 and not simulated():
        lanes = 1  # shuffles need whole warps: a tiny U runs one thread per column
    return None if bucket * lanes > _MAX_THREADS else (bucket, lanes)


def _floor_power_of_two(n: int) -> int:
    return 1 << (max(1, int(n)).bit_length() - 1)


def _stage_steps(bucket: int, lanes: int, rows: int, itemsize: int, streams: int) -> int | None:
    stage = _floor_power_of_two(int(config.CUDA_REGISTERS_STAGED) * lanes // rows)
    while Shape(bucket, lanes, rows, stage).shared_bytes(itemsize, streams) > config.CUDA_SHARED_MEMORY_LIMIT:
        if stage == 1:
            return None
        stage //= 2
    return stage


def _resident_blocks(kernel, threads: int) -> int:
    """Blocks of ``kernel`` the whole GPU holds at once."""
    overload = next(iter(kernel.overloads.values()))
    registers = max(1, overload.regs_per_thread) * threads
    per_sm = max(1, min(_THREADS_PER_SM // threads, _REGISTERS_PER_SM // registers))
    return per_sm * cuda.get_current_device().MULTIPROCESSOR_COUNT


def _fits(kernel, threads: int) -> bool:
    """Whether the compiled ``kernel`` runs ``threads`` per block with no local memory."""
    if simulated():
        return True
    overload = next(iter(kernel.overloads.values()))
    return overload.max_threads_per_block >= threads and overload.local_mem_per_thread == 0


def _plan(make, batch: int, units: int, itemsize: int, streams: int) -> RegistersPlan | None:
    """The plan for ``make(shape)`` (a kernel factory) following the rule of the module docstring."""
    if config.CUDA_REGISTERS is False or batch == 0:
        return None
    columns = _columns(units)
    if columns is None:
        return None
    bucket, lanes = columns
    chosen = config.CUDA_REGISTERS_ROWS
    most = max(1, int(config.CUDA_REGISTERS_MAX_ROWS))
    rows = 1 if chosen == "auto" else _floor_power_of_two(chosen)
    if chosen == "auto" and not simulated():
        stage = _stage_steps(bucket, lanes, 1, itemsize, streams)
        if stage is None:
            return None
        resident = _resident_blocks(make(Shape(bucket, lanes, 1, stage)), bucket * lanes)
        while -(-batch // rows) > resident and rows * 2 <= most:
            rows *= 2
    while True:
        stage = _stage_steps(bucket, lanes, rows, itemsize, streams)
        if stage is not None:
            shape = Shape(bucket, lanes, rows, stage)
            kernel = make(shape)
            if _fits(kernel, shape.threads):
                blocks = -(-batch // rows)
                return RegistersPlan(blocks, shape, launcher(kernel, blocks, shape.threads))
        if rows == 1 or chosen != "auto":
            return None
        rows //= 2


@functools.lru_cache(maxsize=256)
def _forward_plan(batch, units, dtype, act, has_mask, has_rdrop, keep_all, settings):
    def make(shape):
        return forward_kernel(dtype, shape, act, has_mask, has_rdrop, keep_all)

    return _plan(make, batch, units, dtype.itemsize, streams=1)


@functools.lru_cache(maxsize=256)
def _backward_plan(batch, units, dtype, act, dout_mode, has_mask, has_rdrop, settings):
    if act not in FROM_OUTPUT:
        return None

    def make(shape):
        return backward_kernel(dtype, shape, act, dout_mode, has_mask, has_rdrop)

    return _plan(make, batch, units, dtype.itemsize, streams=2)


def _small_enough(batch: int, steps: int, features: int, units: int) -> bool:
    """Sizes the kernels' int32 arguments hold, with at least one step (zero steps take the other
    paths, which return zero last outputs)."""
    return steps > 0 and max(batch * steps, features, units) <= _INT32_MAX


def forward_plan(batch: int, steps: int, features: int, units: int, dtype: np.dtype, act: int,
                 has_mask: bool, has_rdrop: bool, keep_all: bool) -> RegistersPlan | None:
    """The forward plan for these sizes and options, or None (see the module docstring)."""
    if not _small_enough(batch, steps, features, units):
        return None
    return _forward_plan(batch, units, np.dtype(dtype), act, has_mask, has_rdrop, keep_all, _settings())


def backward_plan(batch: int, steps: int, features: int, units: int, dtype: np.dtype, act: int,
                  dout_mode: int, has_mask: bool, has_rdrop: bool) -> RegistersPlan | None:
    """The backward plan for these sizes and options, or None (see the module docstring)."""
    if not _small_enough(batch, steps, features, units):
        return None
    return _backward_plan(batch, units, np.dtype(dtype), act, dout_mode, has_mask, has_rdrop, _settings())


#: Workspace for ``x @ kernel + bias`` when the outputs cannot hold it, by dtype: kept between
#: calls (every launch goes to the default stream, so a call never overwrites it while an
#: earlier call's kernel still reads it).
_WORKSPACE: dict = {}


def _workspace(size: int, dtype: np.dtype):
    kept = _WORKSPACE.get(dtype)
    if kept is None or kept.size < size:
        kept = _WORKSPACE[dtype] = cuda.device_array(size, dtype)
    return kept


def _project(x, kernel, bias, input_dropout, xw, batch: int, steps: int, features: int,
             units: int) -> None:
    """``xw = (x * input_dropout) @ kernel + bias`` over all ``B * T`` rows (flat pointers)."""
    tile, micro = config.CUDA_TILE, config.CUDA_MICRO
    span = tile * micro
    dtype = np.dtype(x.dtype)
    compiled = projection_kernel(dtype, tile, micro, bias is not None, input_dropout is not None)
    rows = batch * steps
    grid = (max(1, min(-(-units // span), config.CUDA_MAX_BLOCKS)),
            max(1, min(-(-rows // span), config.CUDA_MAX_BLOCKS)))
    launcher(compiled, grid, (tile, tile))(
        pointer(x), pointer(kernel), pointer(bias, dtype), pointer(input_dropout, dtype), xw,
        rows, features, units, steps)


def forward(plan: RegistersPlan, x, kernel, recurrent_kernel, bias, initial_state, mask, input_dropout,
            recurrent_dropout, go_backwards: bool, return_sequences: bool):
    """Run a forward ``plan``; device arrays in (C-contiguous, validated), device arrays out:
    outputs (B, T, U) or (B, U), final state (B, U)."""
    batch, steps, features = x.shape
    units = recurrent_kernel.shape[0]
    dtype = np.dtype(x.dtype)
    out_size = batch * steps * units if return_sequences else batch * units
    block = cuda.device_array(out_size + batch * units, dtype)
    out, state = block[:out_size], block[out_size:]
    in_place = return_sequences and not go_backwards
    xw = out if in_place else _workspace(batch * steps * units, dtype)
    xw_pointer = pointer(xw)
    _project(x, kernel, bias, input_dropout, xw_pointer, batch, steps, features, units)
    plan.launch(xw_pointer, pointer(recurrent_kernel), pointer(initial_state),
                pointer(recurrent_dropout, dtype), pointer(mask, np.dtype(np.bool_)), pointer(out),
                pointer(state), batch, steps, units, int(go_backwards))
    shape = (batch, steps, units) if return_sequences else (batch, units)
    return out.reshape(*shape), state.reshape(batch, units)


def backward_recurrence(plan: RegistersPlan, outputs, d_outputs, d_state, recurrent_kernel, mask,
                        recurrent_dropout, go_backwards: bool):
    """Run a backward ``plan``: ``dz`` (B * T, U), the gradient at every pre-activation (rows in
    input time order), and the initial state's gradient (B, U), as device arrays."""
    batch, steps, units = outputs.shape
    dtype = np.dtype(outputs.dtype)
    block = cuda.device_array((batch * steps + batch) * units, dtype)
    dz, dh0 = block[:batch * steps * units], block[batch * steps * units:]
    plan.launch(pointer(d_outputs, dtype), pointer(outputs), pointer(recurrent_kernel),
                pointer(d_state, dtype), pointer(recurrent_dropout, dtype),
                pointer(mask, np.dtype(np.bool_)), pointer(dz), pointer(dh0), batch, steps, units,
                int(go_backwards), int(d_state is not None))
    return dz.reshape(batch * steps, units), dh0.reshape(batch, units)
