"""Which CUDA kernels run a call: one named :class:`Plan` per call, chosen in Python before any launch.

Forward, the first that applies (backward the same, with the backward kernels):

- ``registers``: ``CUDA_REGISTERS`` on (off by default) and a register-resident shape for U
  (:func:`registers_forward_plan`): U's columns in registers, one launch for all steps;
- ``rows``: U fits in one block's shared memory (:func:`rows_plan`): every step of some batch
  rows per block in one launch, the input projection inside it (forward);
- ``persistent``: U's slices fit in shared memory for all steps (:func:`persistent_plan`): one
  (cooperative) launch for all steps;
- ``per_step``: one launch per step (``tiled`` from ``CUDA_TILED_STEP_MIN_BATCH`` rows).

An empty batch is the ``empty`` plan (nothing to launch). Every threshold is a ``CUDA_*``
setting of :mod:`..config`, with its reason there; the GPU's own limits are the constants below.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numba import cuda

from .. import config
from ..device_arrays import simulated
from . import persistent, rows
from .activation import FROM_OUTPUT
from .launch import allow_shared, launcher, multiprocessors
from .registers import Shape, backward_kernel, forward_kernel


class PerStepPlan(NamedTuple):
    """One launch per step: the shared-memory ``tiled`` step kernels, or one dot product a thread."""

    tiled: bool


class Plan(NamedTuple):
    """A call's path (``registers``, ``rows``, ``persistent``, ``per_step`` or ``empty``) and its
    launch: a :class:`RegistersPlan`, :class:`RowsPlan`, :class:`PersistentPlan`,
    :class:`PerStepPlan`, or None for ``empty``."""

    path: str
    launch: object = None


def forward_plan(batch: int, steps: int, features: int, units: int, dtype: np.dtype, act: int, *,
                 masked: bool, recurrent_dropout: bool, return_sequences: bool) -> Plan:
    """The plan of a forward call on (``batch``, ``steps``, ``features``) inputs, ``units`` units."""
    if batch == 0:
        return Plan("empty")
    registers = registers_forward_plan(batch, steps, features, units, dtype, act, masked,
                                       recurrent_dropout, return_sequences)
    if registers:
        return Plan("registers", registers)
    row_runs = rows_plan(rows.forward_kernel(dtype), batch, units, dtype.itemsize,
                         buffers=4 if recurrent_dropout else 2, features=features,
                         lanes=config.CUDA_ROWS_LANES)
    if row_runs:
        return Plan("rows", row_runs)
    one_launch = persistent_plan(persistent.forward_kernel(dtype), batch, units, dtype.itemsize)
    if one_launch:
        return Plan("persistent", one_launch)
    return Plan("per_step", PerStepPlan(batch >= config.CUDA_TILED_STEP_MIN_BATCH))


def backward_plan(batch: int, steps: int, features: int, units: int, dtype: np.dtype, act: int,
                  dout_mode: int, *, masked: bool, recurrent_dropout: bool) -> Plan:
    """The plan of a backward pass's recurrence (the weight gradients are GEMMs after it)."""
    if batch == 0:
        return Plan("empty")
    registers = registers_backward_plan(batch, steps, features, units, dtype, act, dout_mode, masked,
                                        recurrent_dropout)
    if registers:
        return Plan("registers", registers)
    row_runs = rows_plan(rows.backward_kernel(dtype), batch, units, dtype.itemsize, buffers=3)
    if row_runs:
        return Plan("rows", row_runs)
    one_launch = persistent_plan(persistent.backward_kernel(dtype), batch, units, dtype.itemsize)
    if one_launch:
        return Plan("persistent", one_launch)
    return Plan("per_step", PerStepPlan(batch >= config.CUDA_TILED_STEP_MIN_BATCH))


# ---------------------------------------------------------------------------- rows
class RowsPlan(NamedTuple):
    """Launch of a rows kernel: ``blocks`` x ``threads``, ``rows`` batch rows per block,
    ``shared_bytes`` of dynamic shared memory; ``kernel_shared``: the input kernel is in it;
    ``lanes`` threads per (row, unit) pair; ``ld``: row stride of the weights in shared memory."""

    blocks: int
    threads: int
    rows: int
    shared_bytes: int
    kernel_shared: bool
    lanes: int
    ld: int


def rows_plan(kernel, batch: int, units: int, itemsize: int, buffers: int,
              features: int = 0, lanes: int = 1) -> RowsPlan | None:
    """How to run the rows ``kernel`` (``forward_rows``/``backward_rows``), or None.

    Batch rows are independent, so each block runs every step for its own rows, with all
    of U, its rows' ``buffers`` state-sized buffers and (forward: ``features`` > 0) two
    rows of inputs in shared memory, one block barrier a step and no grid synchronisation.
    Rule: ``config.CUDA_ROWS`` False -> None; rows per block as ``config.CUDA_ROWS_PER_BLOCK``
    (``"auto"``: the batch spread over the multiprocessors, one block each), halved while
    the block's shared memory exceeds what the device allows (more than 48 KiB needs an
    opt-in, see :func:`_allow_shared`); first with the input kernel (F x U) in shared
    memory too, then without it (read from global memory); None when not even one row
    fits. ``lanes`` threads per (row, unit) pair (forward only; 1 under the simulator,
    which has no warp shuffles; halved while the pairs' groups exceed the block), one
    group per pair up to ``config.CUDA_ROWS_MAX_THREADS`` and the kernel's register limit;
    fewer threads loop. With more than one lane the weights' row stride ``ld`` is padded
    so that the groups of a warp read different banks.
    """
    if config.CUDA_ROWS is False or batch == 0:
        return None
    start = config.CUDA_ROWS_PER_BLOCK
    if start == "auto":
        start = -(-batch // multiprocessors())
    start = max(1, min(int(start), batch))
    most = config.CUDA_ROWS_MAX_THREADS
    if not simulated():
        most = min(most, next(iter(kernel.overloads.values())).max_threads_per_block)
    else:
        lanes = 1

    def shared_bytes(n, kernel_shared, ld):
        words = ld * (units + (features if kernel_shared else 0)) + n * (2 * features + buffers * units)
        return words * itemsize

    for kernel_shared in (True, False) if features else (False,):
        rows = start
        while True:
            group = lanes
            while group > 1 and rows * units * group > most:
                group //= 2
            ld = units if group == 1 else units + (32 // group - units) % 32
            fits = allow_shared(kernel, shared_bytes(rows, kernel_shared, ld))
            if fits or rows == 1:
                break
            rows = -(-rows // 2)
        if fits:
            threads = min(rows * units * group, most) // group * group
            return RowsPlan(-(-batch // rows), threads, rows, shared_bytes(rows, kernel_shared, ld),
                            kernel_shared, group, ld)
    return None


# ---------------------------------------------------------------------------- persistent
class PersistentPlan(NamedTuple):
    """Launch of a persistent kernel: ``blocks`` x ``threads``; ``cols`` units per block; each dot
    product split over ``lanes`` threads; shared-memory rows of stride ``ld``; ``stage``: the step's
    input rows are copied to shared memory once per step; ``shared_bytes`` of dynamic shared memory."""

    blocks: int
    threads: int
    cols: int
    lanes: int
    ld: int
    stage: bool
    shared_bytes: int


def persistent_slice(batch: int, units: int, itemsize: int, threads: int, cols: int) -> PersistentPlan | None:
    """The plan for ``cols`` units per block of ``threads``, or None when U's slice does not fit."""
    lanes = config.CUDA_PERSISTENT_LANES
    while lanes > 1 and threads // lanes < batch * cols:  # enough groups for every dot product
        lanes //= 2
    lanes = min(lanes, threads)
    # row stride: a multiple of ``lanes``, an odd one, so the groups of a warp read different banks
    ld = -(-units // lanes) * lanes
    ld += lanes if lanes < 32 and (ld // lanes) % 2 == 0 else 0
    fixed = (ld * cols + (threads if lanes > 1 else 0)) * itemsize  # U's slice, reduction slots
    if fixed > config.CUDA_SHARED_MEMORY_LIMIT:
        return None
    stage = fixed + batch * ld * itemsize <= config.CUDA_SHARED_MEMORY_LIMIT
    shared = fixed + (batch * ld * itemsize if stage else 0)
    return PersistentPlan(-(-units // cols), threads, cols, lanes, ld, stage, shared)


def persistent_plan(kernel, batch: int, units: int, itemsize: int) -> PersistentPlan | None:
    """How to run the persistent ``kernel``, or None to run one launch per step.

    Rule: ``config.CUDA_PERSISTENT`` False -> None; ``"auto"`` -> None above
    ``config.CUDA_PERSISTENT_MAX_BATCH`` rows or under the simulator. Otherwise, while U
    fits in one block's 48 KiB of shared memory and a step costs at most
    ``config.CUDA_SINGLE_BLOCK_MAX_MACS`` multiply-adds, one block holds all of U and
    synchronises only itself between steps (``4 * threads_per_block`` threads, at most
    1024, halved while the kernel's registers do not allow that many; the simulator always
    runs one block of ``threads_per_block``); else U is spread over about one block per
    multiprocessor, which synchronise the whole grid (cooperative launch) between steps,
    provided the slices fit and the grid fits ``max_cooperative_grid_blocks``.
    A block barrier costs far less than a grid barrier (about 5 µs a step on an H200), and
    one launch for all steps far less than a launch per step (tens of µs each from Python).
    """
    mode = config.CUDA_PERSISTENT
    too_large = batch > config.CUDA_PERSISTENT_MAX_BATCH
    if mode is False or (mode == "auto" and (simulated() or too_large)):
        return None
    threads = config.CUDA_THREADS_PER_BLOCK
    if simulated():
        return persistent_slice(batch, units, itemsize, threads, units)
    overload = next(iter(kernel.overloads.values()))

    def launchable(plan):
        return plan is not None and plan.blocks <= overload.max_cooperative_grid_blocks(
            plan.threads, plan.shared_bytes)

    if batch * units * units <= config.CUDA_SINGLE_BLOCK_MAX_MACS:
        single = min(4 * threads, 1024)
        while single >= threads:  # the most threads the kernel's registers allow in one block
            plan = persistent_slice(batch, units, itemsize, single, units)
            if launchable(plan):
                return plan
            single //= 2
    plan = grid_plan(batch, units, itemsize, threads, cuda.get_current_device().MULTIPROCESSOR_COUNT)
    return plan if launchable(plan) else None


def grid_plan(batch: int, units: int, itemsize: int, threads: int, sms: int) -> PersistentPlan | None:
    """U spread over about one block per multiprocessor (``sms``), or over more, smaller slices
    when such a slice does not fit in shared memory; None if not even one unit's does."""
    for cols in range(-(-units // sms), 0, -1):
        plan = persistent_slice(batch, units, itemsize, threads, cols)
        if plan is not None:
            return plan
    return None




# ---------------------------------------------------------------------------- registers
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


def resident_blocks(kernel, threads: int) -> int:
    """Blocks of ``kernel`` the whole GPU holds at once."""
    overload = next(iter(kernel.overloads.values()))
    registers = max(1, overload.regs_per_thread) * threads
    per_sm = max(1, min(_THREADS_PER_SM // threads, _REGISTERS_PER_SM // registers))
    return per_sm * cuda.get_current_device().MULTIPROCESSOR_COUNT


def fits(kernel, threads: int) -> bool:
    """Whether the compiled ``kernel`` runs ``threads`` per block with no local memory."""
    if simulated():
        return True
    overload = next(iter(kernel.overloads.values()))
    return overload.max_threads_per_block >= threads and overload.local_mem_per_thread == 0


def _registers_plan(make, batch: int, units: int, itemsize: int, streams: int) -> RegistersPlan | None:
    """The plan for ``make(shape)`` (a kernel factory): the rule of :func:`registers_forward_plan`."""
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
        resident = resident_blocks(make(Shape(bucket, lanes, 1, stage)), bucket * lanes)
        while -(-batch // rows) > resident and rows * 2 <= most:
            rows *= 2
    while True:
        stage = _stage_steps(bucket, lanes, rows, itemsize, streams)
        if stage is not None:
            shape = Shape(bucket, lanes, rows, stage)
            kernel = make(shape)
            if fits(kernel, shape.threads):
                blocks = -(-batch // rows)
                return RegistersPlan(blocks, shape, launcher(kernel, blocks, shape.threads))
        if rows == 1 or chosen != "auto":
            return None
        rows //= 2


@functools.lru_cache(maxsize=256)
def _registers_forward(batch, units, dtype, act, has_mask, has_rdrop, keep_all, settings):
    def make(shape):
        return forward_kernel(dtype, shape, act, has_mask, has_rdrop, keep_all)

    return _registers_plan(make, batch, units, dtype.itemsize, streams=1)


@functools.lru_cache(maxsize=256)
def _registers_backward(batch, units, dtype, act, dout_mode, has_mask, has_rdrop, settings):
    if act not in FROM_OUTPUT:
        return None

    def make(shape):
        return backward_kernel(dtype, shape, act, dout_mode, has_mask, has_rdrop)

    return _registers_plan(make, batch, units, dtype.itemsize, streams=2)


def _small_enough(batch: int, steps: int, features: int, units: int) -> bool:
    """Sizes the kernels' int32 arguments hold, with at least one step (zero steps take the other
    paths, which return zero last outputs)."""
    return steps > 0 and max(batch * steps, features, units) <= _INT32_MAX


def registers_forward_plan(batch: int, steps: int, features: int, units: int, dtype: np.dtype,
                           act: int, has_mask: bool, has_rdrop: bool, keep_all: bool) -> RegistersPlan | None:
    """The register-resident forward plan for these sizes and options, or None.

    The rule (every setting in :mod:`..config`):

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
      needs local memory (its weights would not stay in registers): the call then takes the
      other paths.
    - Backward: only for activations whose derivative is a function of the output
      (``FROM_OUTPUT`` of :mod:`.activation`: linear, tanh, relu, sigmoid, elu, selu, softplus,
      softsign, hard_sigmoid, exponential, relu6, leaky_relu); silu, gelu, mish and hard_silu
      take the other paths.
    """
    if not _small_enough(batch, steps, features, units):
        return None
    return _registers_forward(batch, units, np.dtype(dtype), act, has_mask, has_rdrop, keep_all, _settings())


def registers_backward_plan(batch: int, steps: int, features: int, units: int, dtype: np.dtype,
                            act: int, dout_mode: int, has_mask: bool,
                            has_rdrop: bool) -> RegistersPlan | None:
    """The backward plan for these sizes and options, or None (see :func:`registers_forward_plan`)."""
    if not _small_enough(batch, steps, features, units):
        return None
    return _registers_backward(batch, units, np.dtype(dtype), act, dout_mode, has_mask, has_rdrop,
                               _settings())


