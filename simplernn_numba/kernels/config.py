"""Every threshold and tuning constant of the kernels, each with the reason for its value.

Two kinds of settings live here:

- **Plan settings** are read in Python each time a call picks its plan (which kernel runs, how
  the batch is split, when the GPU is worth it). They can be changed at run time, for one block
  of code or for the rest of the process::

      from simplernn_numba.kernels import config

      with config.override(SERIAL_WORK=0):     # force the parallel CPU kernels
          layer(x)
      config.set(CUDA_THREADS_PER_BLOCK=128)    # until config.reset()

- **Compile-time constants** (:data:`COMPILE_TIME`: tile shapes, vector width, cache blocking)
  are baked into the compiled kernels and into Numba's on-disk cache. :func:`override` and
  :func:`set` refuse them; to change one, edit this file (the cache stamp covers it, see
  :mod:`simplernn_numba._cache`).

Measurements quoted below were taken on this project's 2-core x86-64 machine (2 MiB L2 per
core, 48 KiB L1d) unless they name another; ``B, T, F, U`` are batch, timesteps, features and units.

>>> from simplernn_numba.kernels import config
>>> with config.override(SERIAL_WORK=0):
...     config.SERIAL_WORK
0
>>> config.SERIAL_WORK == config.DEFAULTS["SERIAL_WORK"]
True
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

# ------------------------------------------------------------------------------------------------
# CPU plans (Python-side choices, :mod:`simplernn_numba.kernels.cpu.plan`)
# ------------------------------------------------------------------------------------------------

#: Below this many multiply-adds (B*T*(F+U)*U) a forward call runs on the calling thread: the
#: thread pool's start-up and hand-over cost more than the work.
SERIAL_WORK = 1 << 20
#: Below this many multiply-adds of the backward recurrence (B*T*U*U) it runs on the calling
#: thread, for the same reason (the backward step does less work per multiply-add).
BACKWARD_SERIAL_WORK = 1 << 18
#: With at most this many units and at least ``LANES_MIN_BATCH`` rows the recurrence runs with
#: the batch rows as vector lanes: a row's products over 16 units or fewer are too short to
#: vectorise.
LANES_MAX_UNITS = 16
LANES_MIN_BATCH = 8
#: Up to this size of ``[kernel; recurrent_kernel]`` (bytes, an eighth of L2) the weights stay
#: in L2 through a step, so an inference call below ``FUSED_MAX_WORK`` multiply-adds (and every
#: training call) does its input projection inside each step's product; above either, each run
#: of rows projects its inputs first, in one large product.
FUSED_WEIGHT_BYTES = 1 << 18
FUSED_MAX_WORK = 1 << 24
#: Up to this size of ``[kernel; recurrent_kernel]`` padded to whole tiles (bytes, within L1)
#: the one- and two-row kernels compute each step's input product in the step, off the chain of
#: dependent steps: its FMAs fill the slots left idle while the previous step's activation runs
#: (1,2000,8,32 float32, AVX-512: 35.5 -> 31 ns a step). Beyond it the kernel's loads would come
#: from L2 every step, and the inputs are projected first, in one product (the same bits).
STEP_INPUT_BYTES = 1 << 15
#: Up to this size of the recurrent kernel (bytes) the sequential products run on tiles of
#: batch rows held in registers, each run of rows through every step; beyond it the kernel no
#: longer fits in L2 and the weights are packed into column panels (or, with a mask or
#: recurrent dropout, each step is one BLAS GEMM over the batch).
ROWS_WEIGHT_BYTES = 1 << 18
#: From this many batch rows the large-kernel paths (panels, per-step GEMM) are taken: below
#: it a step is a few GEMVs, which the per-row tiles do as well.
PANELS_MIN_BATCH = 8
#: From this many units (with ``SERIAL_WORK`` and ``PANELS_MIN_BATCH``) a call without a mask or
#: recurrent dropout runs on packed panels even with weights in L2 (64,100,128,128 float32
#: 5.0 -> 4.5 ms); with fewer units a panel's padding to 24 columns costs more than it saves
#: (32,500,32,32: 3.2 against 1.9 ms).
PANELS_MIN_UNITS = 64
#: OpenBLAS runs a GEMM of at most this many multiply-adds (M*N*K) on the calling thread (its
#: GEMM_MULTITHREAD_THRESHOLD, 4, times 65536), so no worker thread is left spinning on the cores
#: the next parallel kernel needs. The backward pass's weight and input gradients go to BLAS
#: while each product is this small (no kernel to compile), to the Numba products beyond.
BLAS_SERIAL_MACS = 1 << 18
#: Runs of rows per thread of every parallel recurrence (rows, lanes, panels, forward and
#: backward): a run goes through every step on its own, without synchronising with the others,
#: and the runs go to whichever thread comes free (:func:`simplernn_numba._threading.
#: parallel_section`), so a thread slowed by another process takes fewer of them; more runs
#: than threads cost little (16,500,32,32 forward 1.20 -> 1.08 ms median with 4 runs a thread).
RUNS_PER_THREAD = 4
#: Fewest quads of rows per run of the panels paths: each run streams every weight panel through
#: L1 once a step for its own rows, so a run of fewer rows pays that for less work.
PANELS_RUN_QUADS = 4
#: Fewest rows per run of the lanes path: the rows are its vector lanes, and every loop over
#: them pays its start and remainder once per unit and term, so short runs cost more than the
#: balance gains (512,100,8,16 float32, AVX-512: eight runs of 64 rows 1.6x the time of two of
#: 256, four of 128 level with two).
LANES_RUN_ROWS = 128
#: Cost of a padded element of a tile of 64-byte (AVX-512) vectors against one of 32-byte
#: vectors, when the rows path chooses its tile shape (:func:`.cpu.products.tile_shape`): the
#: wide tiles do each load, broadcast and FMA for twice the lanes but run at a lower clock
#: (64,100,128,128 and 128,200,512,512 float32, the same padding: 0.73 to 0.80 of the time).
WIDE_VECTOR_COST = 0.8
#: Prepared weight layouts kept for immutable weight arrays (a layer's), least recently
#: prepared dropped first; each is the size of the weights.
PREPARED_WEIGHTS_KEPT = 16
#: Requests for work arrays below this many bytes get fresh arrays rather than a slice of the
#: thread's kept buffer: glibc recycles small blocks without page faults.
WORKSPACE_MIN_BYTES = 1 << 18

# ------------------------------------------------------------------------------------------------
# CPU compile-time constants (in :data:`COMPILE_TIME`: baked into compiled kernels)
# ------------------------------------------------------------------------------------------------

def _vector_bytes() -> int:
    """The widest vector register of the CPU Numba compiles for: 64 bytes with AVX-512 (one zmm
    register), else 32 (one AVX2 ymm register; LLVM splits it in two on SSE or NEON).
    ``SIMPLERNN_NUMBA_VECTOR_BYTES=32`` or ``64`` chooses; the on-disk cache is keyed on it."""
    chosen = os.environ.get("SIMPLERNN_NUMBA_VECTOR_BYTES")
    if chosen:
        if chosen not in ("32", "64"):
            raise ValueError(f"SIMPLERNN_NUMBA_VECTOR_BYTES must be 32 or 64; received {chosen!r}.")
        return int(chosen)
    from numba.core import config as numba_config

    if numba_config.CPU_NAME and numba_config.CPU_NAME != "host":  # a named target (portable AOT)
        return 64 if "+avx512f" in (numba_config.CPU_FEATURES or "") else 32
    try:
        from llvmlite import binding

        return 64 if binding.get_host_cpu_features().get("avx512f") else 32
    except (ImportError, RuntimeError):
        return 32


#: Bytes of the widest SIMD vectors of the register-tiled products: the CPU's widest vector
#: register (64 with AVX-512). The rows path chooses 32 or 64 per call (its tile shapes); the
#: panels and the backward pass's products always use these.
VECTOR_BYTES = _vector_bytes()
#: Output rows blocked together by the input projection's tiles (four rows by three vectors,
#: twelve accumulators: the most that fit the 16 AVX2 registers with their operands).
PRODUCT_TILE_ROWS = 4
#: Rows of the left operand per block of the input projection: 48 rows of K = 128 float32 are
#: 24 KB, which stay in L1 while every column triple passes over them.
PRODUCT_ROW_BLOCK = 48
#: Vectors of units per weight panel of the panels path: a 4x4 tile's sixteen accumulators with
#: their operands fit AVX-512's 32 vector registers, a 4x3 tile's twelve AVX2's 16 (64,100,128,128
#: float32 with 64-byte vectors: 144 columns padded for 128 units with three, none with four).
PANEL_VECTORS = 4 if VECTOR_BYTES == 64 else 3
#: Partial sums over ``k`` per output vector of a one-row step (:func:`.cpu.products.row_partials`):
#: a step's chain of dependent FMAs is ``K / ONE_ROW_PARTIALS`` long. Four vectors of four
#: partials are sixteen accumulators, which AVX-512's 32 registers hold with their operands;
#: AVX2's 16 take two partials (eight accumulators: sixteen spilled, 1,2000,8,32 and 2,800,24,48
#: ran 1.1-1.4x slower).
ONE_ROW_PARTIALS = 4 if VECTOR_BYTES == 64 else 2
#: The same for two rows (:func:`.cpu.products.row_pair_partials`): two rows by four vectors by
#: two partials are sixteen accumulators with AVX-512; with AVX2 one chain each (eight).
TWO_ROW_PARTIALS = 2 if VECTOR_BYTES == 64 else 1
#: Rows of the left operand per block of a panel product: 48 rows of K = 512 float32 are 96 KB,
#: in L2 while every panel passes over them.
PANEL_ROW_BLOCK = 48
#: Blocking of the gradient products after the backward loop: K in blocks of ``K_BLOCK`` and
#: output rows in blocks of ``ROW_BLOCK``; for the weight gradients (left operand transposed,
#: K = B*T long) ``K_BLOCK_T`` and ``ROW_BLOCK_T``, so that 32-row blocks of both operands
#: (16 KB each at 128 float32 columns) fit in L1 together (6400x128x128 float32 on one core:
#: 45-47 GFLOP/s with 256x64 blocks, 57-62 with these).
K_BLOCK = 128
ROW_BLOCK = 64
K_BLOCK_T = 32
ROW_BLOCK_T = 128

# ------------------------------------------------------------------------------------------------
# Device choice (:mod:`simplernn_numba.dispatch`, ``device="auto"``)
# ------------------------------------------------------------------------------------------------

#: Host inputs go to the GPU from this many FLOPs per forward call (below it, launches and
#: host-device copies outweigh the GPU)...
CUDA_MIN_FLOPS = 1e8
#: ...and from this many FLOPs per step: the recurrence costs the GPU some microseconds per step
#: however small the step (H200: 64,100,128,128, 4.2e6 FLOPs a step, 7.4 ms from NumPy on the
#: GPU against 0.94 ms on the CPU; 128,200,512,512, 1.3e8 a step, 41 against 66 ms).
CUDA_MIN_STEP_FLOPS = 1e7

# ------------------------------------------------------------------------------------------------
# CUDA launches (:mod:`simplernn_numba.kernels.cuda`); tests shrink them so that tiny inputs run
# every grid-stride loop several times. Defaults measured on an H200 (benchmarks/gpu_check.sh).
# ------------------------------------------------------------------------------------------------

#: Threads per block of the 1-D kernels.
CUDA_THREADS_PER_BLOCK = 256
#: Blocks per grid dimension at most; grid-stride loops cover the rest.
CUDA_MAX_BLOCKS = 4096
#: Edge of the tile x tile thread blocks of the tiled GEMM and step kernels.
CUDA_TILE = 16
#: Outputs per thread and dimension of the tiled GEMM (micro x micro register tile).
CUDA_MICRO = 4
#: Smallest batch whose per-step launches use the shared-memory tiled step kernels.
CUDA_TILED_STEP_MIN_BATCH = 16
#: The persistent recurrence kernel: "auto" (see ``cuda.plan.persistent_plan``), True or False. It ran
#: 3-17x faster than launches per step at 1-64 rows and level with them at 128.
CUDA_PERSISTENT = "auto"
#: Largest batch for which "auto" picks the persistent kernel.
CUDA_PERSISTENT_MAX_BATCH = 128
#: Most threads sharing one dot product in the persistent kernel (a power of two, halved while a
#: block has fewer thread groups than dot products per step).
CUDA_PERSISTENT_LANES = 32
#: Most multiply-adds per step run by a single persistent block; beyond, slices over a grid.
CUDA_SINGLE_BLOCK_MAX_MACS = 2 ** 18
#: The rows kernels (every step in one launch, U in one block's shared memory): "auto" or True
#: whenever U fits, False never.
CUDA_ROWS = "auto"
#: Batch rows per block of the rows kernels: "auto" (the batch spread over the multiprocessors)
#: or a number.
CUDA_ROWS_PER_BLOCK = "auto"
#: Threads of a rows block at most.
CUDA_ROWS_MAX_THREADS = 1024
#: Threads per (row, unit) pair in the forward rows kernel (a power of two; 4 ran 10-16% faster
#: than 1 on an H100, 16 no better).
CUDA_ROWS_LANES = 4
#: Dynamic shared memory a block may use without an opt-in (bytes): CUDA's default limit.
CUDA_SHARED_MEMORY_LIMIT = 48 * 1024
#: The register-resident kernels (``cuda.plan.registers_forward_plan``: U's columns in registers,
#: one barrier a step, pointer arguments, two launches a forward call): "auto" or True whenever
#: the plan's rule finds a shape (U <= 128 with 16 weights a thread), False never. Off by
#: default until they have run and been timed on a GPU (they are tested in the simulator and
#: compiled for sm_90 only); off, the rows / persistent / per-step plans run.
CUDA_REGISTERS = False
#: Entries of U each thread keeps in registers: 16 float32 weights kept a U = 64 step at 48
#: registers, 0-byte stack (ptxas, sm_90); 1024 threads of 16 weights hold U = 128.
CUDA_REGISTERS_WEIGHTS = 16
#: Batch rows per register-resident block: "auto" (the fewest that keep the whole batch resident
#: at once) or a number (a power of two).
CUDA_REGISTERS_ROWS = "auto"
#: Most rows per register-resident block under "auto": each row adds an accumulator and a share
#: of the staged loads to every thread's registers.
CUDA_REGISTERS_MAX_ROWS = 8
#: Staged global loads per thread per chunk of steps (the chunk: this times lanes / rows steps),
#: issued a chunk ahead of their use so that their latency overlaps the chunk's steps.
CUDA_REGISTERS_STAGED = 4

# ------------------------------------------------------------------------------------------------

#: Names baked into compiled code: :func:`override` and :func:`set` refuse them.
COMPILE_TIME = frozenset({"VECTOR_BYTES", "PRODUCT_TILE_ROWS", "PRODUCT_ROW_BLOCK", "PANEL_VECTORS",
                          "PANEL_ROW_BLOCK", "K_BLOCK", "ROW_BLOCK", "K_BLOCK_T", "ROW_BLOCK_T",
                          "ONE_ROW_PARTIALS", "TWO_ROW_PARTIALS"})

_module = sys.modules[__name__]
#: Every setting's value as this module defines it.
DEFAULTS = {name: value for name, value in vars(_module).items()
            if name.isupper() and name not in ("DEFAULTS", "COMPILE_TIME")}


def compile_time_values() -> str:
    """The compile-time constants' values, for the on-disk cache's key (``VECTOR_BYTES``
    depends on the machine, not on this file)."""
    return ",".join(f"{name}={DEFAULTS[name]}" for name in sorted(COMPILE_TIME))


def _check(values: dict) -> None:
    for name, value in values.items():
        if name not in DEFAULTS:
            raise KeyError(f"unknown kernel setting {name!r}; settings: {', '.join(sorted(DEFAULTS))}.")
        if name in COMPILE_TIME:
            raise ValueError(f"{name} is a compile-time constant (baked into compiled kernels); "
                             "edit simplernn_numba/kernels/config.py to change it.")
        default = DEFAULTS[name]
        number = isinstance(default, (int, float)) and not isinstance(default, bool)
        if number and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise TypeError(f"{name} must be a number like its default {default!r}; received {value!r}.")


def set(**values) -> None:  # noqa: A001 - the module's verb, as in ``config.set(...)``
    """Change plan settings for the rest of the process (until :func:`reset`)."""
    _check(values)
    for name, value in values.items():
        setattr(_module, name, value)


@contextlib.contextmanager
def override(**values) -> Iterator[None]:
    """Change plan settings inside a ``with`` block, restoring the previous values after it."""
    _check(values)
    previous = {name: getattr(_module, name) for name in values}
    set(**values)
    try:
        yield
    finally:
        for name, value in previous.items():
            setattr(_module, name, value)


def reset() -> None:
    """Every setting back to its default."""
    for name, value in DEFAULTS.items():
        setattr(_module, name, value)
