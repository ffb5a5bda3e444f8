"""Numba CUDA kernels for SimpleRNN (the optional ``cuda`` extra, ``numba-cuda``).

Same contract as :mod:`simplernn_numba.kernels.reference` (see
:mod:`simplernn_numba.kernels`). Every array argument may be a NumPy array or a
GPU array (a Numba device array, or any object exposing
``__cuda_array_interface__``, used with zero copies). Results are device arrays
when ``x`` was on the GPU and NumPy arrays otherwise.

Layout of the work:

- when all of ``recurrent_kernel`` fits in one block's shared memory, the rows
  kernels (``forward_rows``/``backward_rows``, see :func:`rows_plan`) run every
  step in one launch: each block owns some batch rows, which never depend on other
  rows, so blocks never synchronise with each other; U, the rows' state and (forward)
  the inputs of the step and the next one stay in shared memory, and the forward
  kernel computes the input projection itself. One block barrier a step;
- otherwise, everything that is not sequential in time is a tiled shared-memory
  GEMM over all ``B * T`` rows at once (``gemm`` of :mod:`._cuda_compile`): the input
  projection ``x @ kernel + bias`` in the forward pass; the pre-activations, ``dX``,
  ``dW``, ``dU`` in the backward pass (the backward rows path too; ``db`` is a column
  sum). Dropout masks are applied while tiles are loaded, never materialised;
- and the sequential ``h @ recurrent_kernel`` part runs either as one launch per
  step (a grid-stride loop over ``(batch, unit)`` pairs, or shared-memory tiles
  of ``(batch, unit)`` for large batches, see :func:`_per_step`), or as one
  persistent kernel that keeps ``recurrent_kernel`` in shared memory for all
  steps: one block holding all of it (small U; a block barrier between steps),
  or one slice per block over about one block per multiprocessor, the grid
  synchronised between steps (``cuda.cg.this_grid().sync()``, a cooperative
  launch). :func:`persistent_plan` holds the rule. Bias, activation, mask and
  dropout are fused into each step.

Rows of the flat ``(B * T, ...)`` work arrays are in input time order; the
recurrence kernels map processing step ``s`` to time ``t`` (``T - 1 - s`` with
``go_backwards``). Launch sizes and path choices come from the ``CUDA_*`` settings of :mod:`.config`, which
tests shrink so that tiny inputs still run every grid-stride loop.

Device functions live in :mod:`._cuda_device`, the kernels in :mod:`._cuda_compile`
(compiled lazily, once per dtype and tile shape, with explicit signatures); this
module holds the launch logic. It is imported only when the CUDA backend is used.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numba
import numpy as np
from numba import cuda

from .. import activations as A
from . import _cuda_registers_host as _registers
from . import config
from ._cuda_compile import kernels_for, tiled_kernels_for
from ._cuda_device import DOUT_LAST, DOUT_SEQUENCE, NO_DOUT


def simulator_enabled() -> bool:
    """True when running under the Numba CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``)."""
    return bool(numba.config.ENABLE_CUDASIM)


# ---------------------------------------------------------------------------- host helpers
def is_device_array(value) -> bool:
    """True for a Numba device array or any object exposing ``__cuda_array_interface__``."""
    return hasattr(value, "__cuda_array_interface__") or cuda.devicearray.is_cuda_ndarray(value)


def to_device(value):
    """A device array for ``value``: GPU arrays are wrapped with zero copies, host arrays copied."""
    if value is None:
        return None
    if cuda.devicearray.is_cuda_ndarray(value):
        return value
    if hasattr(value, "__cuda_array_interface__"):
        return cuda.as_cuda_array(value)
    return cuda.to_device(np.ascontiguousarray(value))


def _blocks(n: int) -> tuple[int, int]:
    """(blocks, threads) for a 1-D grid-stride loop over ``n`` items."""
    threads = config.CUDA_THREADS_PER_BLOCK
    return max(1, min(-(-n // threads), config.CUDA_MAX_BLOCKS)), threads


def _launch(kernel, n: int, *args) -> None:
    blocks, threads = _blocks(n)
    kernel[blocks, threads](*args)


class _Placeholders:
    """Zero-size device arrays passed where an optional array is absent (a flag says so)."""

    def __init__(self, dtype: np.dtype):
        self.vector = cuda.device_array(0, dtype)
        self.matrix = cuda.device_array((0, 0), dtype)
        self.mask = cuda.device_array((0, 0), np.bool_)
        self.first = cuda.device_array(0, np.int32)


@functools.cache
def _placeholders(dtype: np.dtype) -> _Placeholders:
    return _Placeholders(dtype)


def _gemm(a, b, c, *, a_trans=False, b_trans=False, a_scale=None, steps=1, bias=None,
          c_scale=None, accumulate=False) -> None:
    """Launch the tiled GEMM (see :func:`_tiled_kernels`); placeholders fill absent options."""
    tile, micro = config.CUDA_TILE, config.CUDA_MICRO
    none = _placeholders(c.dtype)
    kernel = tiled_kernels_for(np.dtype(c.dtype), tile, micro)["gemm"]
    m, n = c.shape
    kernel[_tile_grid(m, n, tile * micro), (tile, tile)](
        a, a_trans, none.matrix if a_scale is None else a_scale, a_scale is not None, steps,
        b, b_trans, none.vector if bias is None else bias, bias is not None,
        none.matrix if c_scale is None else c_scale, c_scale is not None, accumulate, c)


def _tile_grid(rows: int, cols: int, span: int) -> tuple[int, int]:
    """(x, y) blocks covering a rows x cols output in span x span tiles, capped by ``max_blocks``."""
    cap = config.CUDA_MAX_BLOCKS
    return max(1, min(-(-cols // span), cap)), max(1, min(-(-rows // span), cap))


def _per_step(name: str, dtype: np.dtype, batch: int, units: int):
    """The per-step kernel ``name`` ("forward_step"/"backward_step") and its launch configuration.

    Batches of at least ``config.CUDA_TILED_STEP_MIN_BATCH`` rows use the shared-memory tiled
    variant (each block reuses tiles of U across ``tile`` rows); smaller ones one dot product
    per thread.
    """
    tile = config.CUDA_TILE
    if batch >= config.CUDA_TILED_STEP_MIN_BATCH:
        kernel = tiled_kernels_for(dtype, tile, config.CUDA_MICRO)[name + "_tiled"]
        return kernel[_tile_grid(batch, units, tile), (tile, tile)]
    return kernels_for(dtype)[name][_blocks(batch * units)]


def _copy(array):
    out = cuda.device_array(array.shape, array.dtype)
    out.copy_to_device(array)
    return out


def _first_unmasked(kernels, mask, batch: int, go_backwards: bool):
    first = cuda.device_array(batch, np.int32)
    none = _placeholders(np.dtype(np.float64)).mask
    _launch(kernels["first_unmasked"], batch, none if mask is None else mask, mask is not None,
            bool(go_backwards), first)
    return first


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


def _plan(batch: int, units: int, itemsize: int, threads: int, cols: int) -> PersistentPlan | None:
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
    if mode is False or (mode == "auto" and (simulator_enabled() or too_large)):
        return None
    threads = config.CUDA_THREADS_PER_BLOCK
    if simulator_enabled():
        return _plan(batch, units, itemsize, threads, units)
    overload = next(iter(kernel.overloads.values()))

    def launchable(plan):
        return plan is not None and plan.blocks <= overload.max_cooperative_grid_blocks(
            plan.threads, plan.shared_bytes)

    if batch * units * units <= config.CUDA_SINGLE_BLOCK_MAX_MACS:
        single = min(4 * threads, 1024)
        while single >= threads:  # the most threads the kernel's registers allow in one block
            plan = _plan(batch, units, itemsize, single, units)
            if launchable(plan):
                return plan
            single //= 2
    plan = _grid_plan(batch, units, itemsize, threads, cuda.get_current_device().MULTIPROCESSOR_COUNT)
    return plan if launchable(plan) else None


def _grid_plan(batch: int, units: int, itemsize: int, threads: int, sms: int) -> PersistentPlan | None:
    """U spread over about one block per multiprocessor (``sms``), or over more, smaller slices
    when such a slice does not fit in shared memory; None if not even one unit's does."""
    for cols in range(-(-units // sms), 0, -1):
        plan = _plan(batch, units, itemsize, threads, cols)
        if plan is not None:
            return plan
    return None


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
        start = -(-batch // _multiprocessors())
    start = max(1, min(int(start), batch))
    most = config.CUDA_ROWS_MAX_THREADS
    if not simulator_enabled():
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
            fits = _allow_shared(kernel, shared_bytes(rows, kernel_shared, ld))
            if fits or rows == 1:
                break
            rows = -(-rows // 2)
        if fits:
            threads = min(rows * units * group, most) // group * group
            return RowsPlan(-(-batch // rows), threads, rows, shared_bytes(rows, kernel_shared, ld),
                            kernel_shared, group, ld)
    return None


def _multiprocessors() -> int:
    """The current GPU's multiprocessor count (1 under the simulator)."""
    return 1 if simulator_enabled() else cuda.get_current_device().MULTIPROCESSOR_COUNT


#: Dynamic shared memory each compiled kernel has been allowed (bytes), by kernel.
_SHARED_ALLOWED: dict = {}


def _allow_shared(kernel, nbytes: int) -> bool:
    """Whether ``kernel`` may launch with ``nbytes`` of dynamic shared memory.

    Up to :data:`config.CUDA_SHARED_MEMORY_LIMIT` always; beyond it (on a real GPU) up to the device's
    opt-in maximum (227 KiB on an H100), after raising the kernel's
    ``CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES`` to that maximum once.
    """
    if nbytes <= config.CUDA_SHARED_MEMORY_LIMIT:
        return True
    if simulator_enabled():
        return False
    allowed = _SHARED_ALLOWED.get(kernel)
    if allowed is None:
        allowed = config.CUDA_SHARED_MEMORY_LIMIT
        try:
            from numba.cuda.cudadrv.driver import binding, driver

            most = int(cuda.get_current_device().MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)
            function = next(iter(kernel.overloads.values()))._codelibrary.get_cufunc()
            attribute = binding.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
            try:  # numba-cuda loads kernels through the library API (CUkernel handles)
                driver.cuKernelSetAttribute(attribute, most, function.handle, function.device.id)
            except Exception:
                driver.cuFuncSetAttribute(function.handle, attribute, most)
            allowed = most
        except Exception:  # an older driver or binding: stay within the default limit
            pass
        _SHARED_ALLOWED[kernel] = allowed
    return nbytes <= allowed


def _launch_persistent(kernel, plan: PersistentPlan, *args) -> None:
    """Cooperative launch of a persistent kernel following ``plan``."""
    kernel[plan.blocks, plan.threads, 0, plan.shared_bytes](*args, plan.cols, plan.lanes, plan.ld,
                                                            plan.stage)


def _host_or_device(arrays, on_device: bool):
    return arrays if on_device else tuple(None if a is None else a.copy_to_host() for a in arrays)


def _activation_code(activation) -> int:
    if not isinstance(activation, str):
        raise TypeError(
            "CUDA kernels need a built-in activation name; received "
            f"{activation!r}. Python callables run on device='cpu' (the NumPy reference)."
        )
    return A.code(activation)


def _check_dtypes(dtype: np.dtype, **arrays) -> None:
    """The kernels are compiled per dtype and read raw memory: every array must match (mask: bool)."""
    for name, value in arrays.items():
        if value is None:
            continue
        expected = np.dtype(np.bool_) if name == "mask" else dtype
        interface = getattr(value, "__cuda_array_interface__", None)
        received = np.dtype(interface["typestr"] if interface else value.dtype)
        if received != expected:
            raise TypeError(f"{name} must have dtype {expected} for the CUDA kernels; received {received}.")


# ---------------------------------------------------------------------------- public kernels
def forward(x, kernel, recurrent_kernel, bias, initial_state, *, mask=None,
            input_dropout=None, recurrent_dropout=None, go_backwards=False,
            activation="tanh", return_sequences=True):
    """SimpleRNN forward recurrence on the GPU (same contract as the reference).

    Parameters and returns as :func:`simplernn_numba.kernels.reference.forward`;
    arrays may be NumPy or device arrays (see the module docstring); the results
    are device arrays exactly when ``x`` is one.
    """
    act = _activation_code(activation)
    on_device = is_device_array(x)
    x = to_device(x)
    batch, steps, features = x.shape
    units = recurrent_kernel.shape[0]
    dtype = np.dtype(x.dtype)
    out_shape = (batch, steps, units) if return_sequences else (batch, units)
    if batch == 0:
        empty = (cuda.device_array(out_shape, dtype), cuda.device_array((batch, units), dtype))
        return _host_or_device(empty, on_device)
    _check_dtypes(dtype, kernel=kernel, recurrent_kernel=recurrent_kernel, bias=bias,
                  initial_state=initial_state, mask=mask, input_dropout=input_dropout,
                  recurrent_dropout=recurrent_dropout)
    mask, input_dropout, recurrent_dropout = map(to_device, (mask, input_dropout, recurrent_dropout))
    registers = _registers.forward_plan(batch, steps, features, units, dtype, act, mask is not None,
                                        recurrent_dropout is not None, bool(return_sequences))
    if registers:
        results = _registers.forward(registers, x, to_device(kernel), to_device(recurrent_kernel),
                                     to_device(bias), to_device(initial_state), mask, input_dropout,
                                     recurrent_dropout, bool(go_backwards), bool(return_sequences))
        return _host_or_device(results, on_device)
    kernels = kernels_for(dtype)
    none = _placeholders(dtype)
    u_flat = to_device(recurrent_kernel).reshape(units * units)
    rows = rows_plan(kernels["forward_rows"], batch, units, dtype.itemsize,
                     buffers=2 if recurrent_dropout is None else 4, features=features,
                     lanes=config.CUDA_ROWS_LANES)
    if rows:  # the projection runs inside the rows kernel
        xw = none.matrix
    else:
        xw = cuda.device_array((batch * steps, units), dtype)
        _gemm(x.reshape(batch * steps, features), to_device(kernel), xw, a_scale=input_dropout,
              steps=steps, bias=to_device(bias))
    first = (_first_unmasked(kernels, mask, batch, go_backwards) if mask is not None or not rows
             else none.first)
    params = (xw, none.matrix if recurrent_dropout is None else recurrent_dropout,
              recurrent_dropout is not None, none.mask if mask is None else mask, mask is not None,
              first, bool(go_backwards), act, bool(return_sequences))
    outputs = cuda.device_array((batch * steps, units) if return_sequences else (batch, units), dtype)
    if rows:
        final_state = cuda.device_array((batch, units), dtype)
        projection = (x.reshape(batch * steps, features), to_device(kernel).reshape(features * units),
                      none.vector if bias is None else to_device(bias), bias is not None,
                      none.matrix if input_dropout is None else input_dropout, input_dropout is not None)
        kernels["forward_rows"][rows.blocks, rows.threads, 0, rows.shared_bytes](
            params, projection, u_flat, to_device(initial_state), final_state, outputs, rows.rows,
            rows.kernel_shared, rows.lanes, rows.ld)
        return _host_or_device((outputs.reshape(*out_shape), final_state), on_device)
    h_a = _copy(to_device(initial_state))
    h_b = cuda.device_array((batch, units), dtype)
    plan = persistent_plan(kernels["forward_persistent"], batch, units, dtype.itemsize)
    if plan:
        _launch_persistent(kernels["forward_persistent"], plan, params, u_flat, h_a, h_b, outputs)
    else:
        step = _per_step("forward_step", dtype, batch, units)
        for s in range(steps):
            h_cur, h_next = (h_a, h_b) if s % 2 == 0 else (h_b, h_a)
            step(params, u_flat, h_cur, h_next, outputs, s)
    final_state = h_b if steps % 2 == 1 else h_a
    return _host_or_device((outputs.reshape(*out_shape), final_state), on_device)


#: Device arrays are checked by dtype in :func:`forward` itself (see ``cpu.forward_validated``).
forward_validated = forward


def backward(x, kernel, recurrent_kernel, bias, initial_state, outputs, d_outputs, d_state=None,
             *, mask=None, input_dropout=None, recurrent_dropout=None, go_backwards=False,
             activation="tanh"):
    """Backpropagation through time on the GPU (same contract as the reference).

    Parameters and returns as :func:`simplernn_numba.kernels.reference.backward`;
    the returned gradients are device arrays exactly when ``x`` is one.
    """
    act = _activation_code(activation)
    on_device = is_device_array(x)
    x = to_device(x)
    batch, steps, features = x.shape
    units = recurrent_kernel.shape[0]
    dtype = np.dtype(x.dtype)
    kernels = kernels_for(dtype)
    none = _placeholders(dtype)
    kernel_d, bias_d = to_device(kernel), to_device(bias)
    u_mat = to_device(recurrent_kernel)
    _check_dtypes(dtype, kernel=kernel, recurrent_kernel=recurrent_kernel, bias=bias,
                  initial_state=initial_state, outputs=outputs, d_outputs=d_outputs, d_state=d_state,
                  mask=mask, input_dropout=input_dropout, recurrent_dropout=recurrent_dropout)
    mask, input_dropout, recurrent_dropout = map(to_device, (mask, input_dropout, recurrent_dropout))
    rows = batch * steps
    names = ("inputs", "initial_state", "kernel", "recurrent_kernel", "bias")
    grads = dict(zip(names, (cuda.device_array((rows, features), dtype),
                             None, cuda.device_array((features, units), dtype),
                             cuda.device_array((units, units), dtype),
                             None if bias is None else cuda.device_array(units, dtype))))
    x_flat = x.reshape(rows, features)
    h0 = to_device(initial_state)
    h_prev = cuda.device_array((rows, units), dtype)
    if batch:
        _launch(kernels["previous_states"], batch * units, to_device(outputs).reshape(rows, units), h0,
                none.mask if mask is None else mask, mask is not None, bool(go_backwards), h_prev)
    if d_outputs is None:
        dout, dout_mode = none.matrix, NO_DOUT
    else:
        dout = to_device(d_outputs)
        dout_mode = DOUT_SEQUENCE if dout.ndim == 3 else DOUT_LAST
        dout = dout.reshape(rows, units) if dout.ndim == 3 else dout
    registers = (_registers.backward_plan(batch, steps, features, units, dtype, act, dout_mode,
                                          mask is not None, recurrent_dropout is not None)
                 if batch else None)
    if registers:
        dz, grads["initial_state"] = _registers.backward_recurrence(
            registers, to_device(outputs), None if d_outputs is None else dout, to_device(d_state), u_mat,
            mask, recurrent_dropout, bool(go_backwards))
    else:
        dz, grads["initial_state"] = _backward_recurrence(
            kernels, batch, steps, x_flat, kernel_d, bias_d, u_mat, h_prev, dout, dout_mode, d_state, mask,
            input_dropout, recurrent_dropout, go_backwards, act)
    _gemm(dz, kernel_d, grads["inputs"], b_trans=True, c_scale=input_dropout, steps=steps)
    _gemm(x_flat, dz, grads["kernel"], a_trans=True, a_scale=input_dropout, steps=steps)
    _gemm(h_prev, dz, grads["recurrent_kernel"], a_trans=True, a_scale=recurrent_dropout, steps=steps)
    if bias is not None:
        _launch(kernels["column_sum"], units, dz, grads["bias"])
    grads["inputs"] = grads["inputs"].reshape(batch, steps, features)
    return dict(zip(names, _host_or_device(tuple(grads[k] for k in names), on_device)))


def _backward_recurrence(kernels, batch, steps, x_flat, kernel_d, bias_d, u_mat, h_prev, dout, dout_mode,
                         d_state, mask, input_dropout, recurrent_dropout, go_backwards, act):
    """The rows, persistent or per-step backward recurrence: (``dz`` (B * T, U), the initial state's
    gradient (B, U)). The activation's derivative comes from the pre-activations (two GEMMs)."""
    rows, units = h_prev.shape
    dtype = np.dtype(h_prev.dtype)
    none = _placeholders(dtype)
    grad = cuda.device_array((rows, units), dtype)
    _gemm(x_flat, kernel_d, grad, a_scale=input_dropout, steps=steps, bias=bias_d)
    _gemm(h_prev, u_mat, grad, a_scale=recurrent_dropout, steps=steps, accumulate=True)
    _launch(kernels["derivative_in_place"], rows * units, grad, act)
    rows_run = rows_plan(kernels["backward_rows"], batch, units, dtype.itemsize, buffers=3)
    first = (_first_unmasked(kernels, mask, batch, go_backwards) if mask is not None or not rows_run
             else none.first)
    params = (grad, dout, dout_mode, none.matrix if recurrent_dropout is None else recurrent_dropout,
              recurrent_dropout is not None, none.mask if mask is None else mask, mask is not None,
              first, bool(go_backwards))
    dz = cuda.device_array((rows, units), dtype)
    u_flat = u_mat.reshape(units * units)
    if rows_run:  # reads d_state in place (the placeholder: zeros)
        initial = cuda.device_array((batch, units), dtype)
        kernels["backward_rows"][rows_run.blocks, rows_run.threads, 0, rows_run.shared_bytes](
            params, u_flat, none.matrix if d_state is None else to_device(d_state), initial,
            dz, rows_run.rows)
    else:
        dh_a = (cuda.to_device(np.zeros((batch, units), dtype)) if d_state is None
                else _copy(to_device(d_state)))
        dh_b = cuda.device_array((batch, units), dtype)
        plan = (persistent_plan(kernels["backward_persistent"], batch, units, dtype.itemsize)
                if batch else None)
        if plan:
            _launch_persistent(kernels["backward_persistent"], plan, params, u_flat, dh_a, dh_b, dz)
        elif batch:
            step = _per_step("backward_step", dtype, batch, units)
            for j in range(steps):
                dh_cur, dh_next = (dh_a, dh_b) if j % 2 == 0 else (dh_b, dh_a)
                step(params, u_flat, dh_cur, dh_next, dz, steps - 1 - j)
        initial = dh_b if steps % 2 == 1 and batch else dh_a
    return dz, initial
