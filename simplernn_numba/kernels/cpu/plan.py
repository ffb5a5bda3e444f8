"""Which CPU kernel runs a call: one named plan per call, chosen in Python before any kernel runs.

Each plan has entry kernels of its own that compile only the code the plan runs (see
:mod:`.specialise`). The thresholds are the ``config`` settings, each with its reason.

Forward paths:

- ``one_row``, ``two_rows``: one or two batch rows without a mask or recurrent dropout
  (inference, or training with weights beyond ``FUSED_WEIGHT_BYTES``), each step's input product
  in the step with weights up to ``STEP_INPUT_BYTES``, else the input projection first;
- ``lanes``: at most ``LANES_MAX_UNITS`` units and ``LANES_MIN_BATCH`` rows, weights in L2;
- ``panels``: no mask or recurrent dropout, ``PANELS_MIN_BATCH`` rows, and a recurrent kernel
  beyond L2 or at least ``PANELS_MIN_UNITS`` units and ``SERIAL_WORK`` multiply-adds;
- ``gemm``: a large recurrent kernel (beyond ``ROWS_WEIGHT_BYTES``) with a mask or recurrent
  dropout, ``PANELS_MIN_BATCH`` rows, when the projection is not fused;
- ``rows``: everything else, fused (weights in L2, training or small work) or projected.

Backward paths: ``lanes`` and ``rows`` while the recurrent kernel fits (``ROWS_WEIGHT_BYTES``);
beyond it ``panels`` (no mask, recurrent dropout or pre-activations, ``PANELS_MIN_BATCH`` rows),
``gemm_plain`` (the same, fewer rows) or ``gemm``.

>>> forward_plan(32, 10, 8, 4, 4, masked=False, recurrent_dropout=False, training=False)
Plan(path='lanes', runs=1, tile=-1, fused=True)
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numba

from .. import config
from .products import padded_units, tile_shape


class Plan(NamedTuple):
    """A call's path, how many runs of rows it is split into over the threads (1: the calling
    thread alone), the tile shape of the rows paths (-1 elsewhere), and whether the rows path
    projects the inputs inside each step's product (``one_row``, ``two_rows``: inside each step,
    by products of their own)."""

    path: str
    runs: int
    tile: int = -1
    fused: bool = False


@functools.lru_cache(maxsize=256)
def _plan(path: str, runs: int, tile: int = -1, fused: bool = False) -> Plan:
    """The :class:`Plan` of these values (one object each: building a named tuple costs more
    than finding one)."""
    return Plan(path, runs, tile, fused)


def _runs(count: int, per_thread: int, fewest: int = 1) -> int:
    """Runs for ``count`` row pairs or quads: ``per_thread`` a thread, each of at least ``fewest``
    of them, but one per thread while there are as many pairs or quads (at least one run)."""
    threads = numba.get_num_threads()
    return max(1, min(threads, count), min(per_thread * threads, count // fewest))


def largest_run(batch: int, runs: int) -> int:
    """Rows in the largest run when ``batch`` rows are cut into ``runs`` runs of row pairs."""
    return min(batch, 2 * -(-((batch + 1) // 2) // runs))


def forward_plan(batch: int, steps: int, features: int, units: int, itemsize: int, *,
                 masked: bool, recurrent_dropout: bool, training: bool) -> Plan:
    """The plan of a forward call on (``batch``, ``steps``, ``features``) inputs with ``units``
    units and weights of ``itemsize`` bytes."""
    c = config
    work = batch * steps * (features + units) * units
    fits = (features + units) * units * itemsize <= c.FUSED_WEIGHT_BYTES
    large = units * units * itemsize > c.ROWS_WEIGHT_BYTES
    plain = not (masked or recurrent_dropout)
    if fits and units <= c.LANES_MAX_UNITS and batch >= c.LANES_MIN_BATCH:
        runs = 1
        if batch >= 4 and work >= c.SERIAL_WORK:
            runs = _runs(batch // 2, c.RUNS_PER_THREAD, c.LANES_RUN_ROWS // 2)
        return _plan("lanes", runs, -1, True)
    if plain and batch >= c.PANELS_MIN_BATCH and (
            large or (units >= c.PANELS_MIN_UNITS and work >= c.SERIAL_WORK)):
        return _plan("panels", _runs(-(-batch // 4), c.RUNS_PER_THREAD, c.PANELS_RUN_QUADS))
    few = batch <= 2 and plain  # one or two sequences: the input projection out of the steps
    fused = fits and (training or (batch > 1 and not few and work < c.FUSED_MAX_WORK))
    if not fused and large and batch >= c.PANELS_MIN_BATCH:
        return _plan("gemm", 1)
    if few and not fused:
        tile = tile_shape(1, units, itemsize, True)
        in_step = (features + units) * padded_units(units, tile, itemsize) * itemsize
        return _plan(("one_row", "two_rows")[batch - 1], 1, tile, in_step <= c.STEP_INPUT_BYTES)
    runs = _runs(batch // 2, c.RUNS_PER_THREAD) if batch >= 4 and work >= c.SERIAL_WORK else 1
    return _plan("rows", runs, tile_shape(largest_run(batch, runs), units, itemsize), fused)


def backward_plan(batch: int, steps: int, units: int, itemsize: int, *, masked: bool,
                  recurrent_dropout: bool, preactivations: bool) -> Plan:
    """The plan of a backward pass (the recurrence; the weight gradients follow it)."""
    c = config
    if units * units * itemsize <= c.ROWS_WEIGHT_BYTES:
        lanes = units <= c.LANES_MAX_UNITS and batch >= c.LANES_MIN_BATCH
        runs = 1
        if batch > 1 and batch * steps * units * units >= c.BACKWARD_SERIAL_WORK:
            runs = _runs((batch + 1) // 2, c.RUNS_PER_THREAD, c.LANES_RUN_ROWS // 2 if lanes else 1)
        if lanes:
            return _plan("lanes", runs)
        return _plan("rows", runs, tile_shape(largest_run(batch, runs), units, itemsize))
    if masked or recurrent_dropout or preactivations:
        return _plan("gemm", 1)
    if batch >= c.PANELS_MIN_BATCH:
        return _plan("panels", _runs(-(-batch // 4), c.RUNS_PER_THREAD, c.PANELS_RUN_QUADS))
    return _plan("gemm_plain", 1)

