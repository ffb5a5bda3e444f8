"""Compiling the common variants of the CPU kernels ahead of time (``python -m simplernn_numba
compile``), into Numba's on-disk cache, so that later processes load them instead.

A variant is one plan's kernels for one dtype, activation and set of present optional arrays
(:mod:`.specialise`); each is compiled by a small call that takes its plan (``config`` settings
pick the plan where the small shape would not). Shapes do not matter otherwise: a compiled
variant serves every shape that takes its plan and tile.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np
from numba.core import event

from .. import config
from .backward_pass import backward
from .forward_pass import forward_for_training, forward_validated


class Variant(NamedTuple):
    """One variant to compile: its plan's path, a label, the ``config`` settings that send the
    call down its plan, the call's shape (batch, steps, features, units), whether it has a mask,
    whether it has dropout masks, and whether it is a training step (forward and backward)."""

    path: str
    label: str
    settings: dict
    shape: tuple
    masked: bool = False
    dropout: bool = False
    training: bool = False


#: The common variants, for each dtype: inference on every plan (one thread and several), with
#: and without a mask; training steps on the per-row and panels plans, with and without a mask
#: and dropout.
INFERENCE = (
    Variant("lanes", "lanes", {}, (8, 3, 4, 4)),
    Variant("lanes", "lanes, masked", {}, (8, 3, 4, 4), masked=True),
    Variant("lanes", "lanes, runs over threads", {"SERIAL_WORK": 0}, (8, 3, 4, 4)),
    Variant("rows", "rows, tiles of 4 rows", {}, (4, 3, 4, 24)),
    Variant("rows", "rows, tiles of 4 rows of 32-byte vectors", {}, (4, 3, 4, 16)),
    Variant("rows", "rows, tiles of 2 rows", {}, (6, 3, 4, 64)),
    Variant("rows", "rows, masked", {}, (4, 3, 4, 24), masked=True),
    Variant("rows", "rows, runs over threads", {"SERIAL_WORK": 0}, (8, 3, 4, 24)),
    Variant("rows", "rows, projected first", {"FUSED_MAX_WORK": 0}, (4, 3, 4, 24)),
    Variant("one_row", "one row", {}, (1, 3, 4, 24)),
    Variant("one_row", "one row, four vectors", {}, (1, 3, 4, 64)),
    Variant("one_row", "one row, projected first", {"STEP_INPUT_BYTES": 0}, (1, 3, 4, 64)),
    Variant("two_rows", "two rows", {}, (2, 3, 4, 24)),
    Variant("panels", "panels", {"SERIAL_WORK": 0}, (8, 3, 4, 64)),
)
TRAINING = (
    Variant("lanes", "training, lanes", {}, (8, 3, 4, 4), training=True),
    Variant("lanes", "training, lanes, masked, dropout", {}, (8, 3, 4, 4), True, True, True),
    Variant("rows", "training, rows", {}, (4, 3, 4, 24), training=True),
    Variant("rows", "training, rows, masked, dropout", {}, (4, 3, 4, 24), True, True, True),
    Variant("rows", "training, rows, runs over threads",
            {"BACKWARD_SERIAL_WORK": 0, "BLAS_SERIAL_MACS": 0}, (8, 3, 4, 24), training=True),
    Variant("panels", "training, panels", {"ROWS_WEIGHT_BYTES": 0}, (8, 3, 4, 24), training=True),
)
#: The plans :data:`INFERENCE` and :data:`TRAINING` cover.
PATHS = ("lanes", "rows", "one_row", "two_rows", "panels")


def variants(dtypes: tuple[str, ...], training: bool,
             paths: tuple[str, ...] = PATHS) -> Iterator[tuple[str, Variant]]:
    """``(dtype, variant)`` pairs to compile: the variants of ``paths``."""
    for dtype in dtypes:
        for variant in INFERENCE + (TRAINING if training else ()):
            if variant.path in paths:
                yield dtype, variant


def _call(variant: Variant, dtype: str, activation: str) -> None:
    batch, steps, features, units = variant.shape
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, steps, features)).astype(dtype)
    kernel = (0.3 * rng.standard_normal((features, units))).astype(dtype)
    recurrent = (0.3 * rng.standard_normal((units, units))).astype(dtype)
    bias, h0 = np.zeros(units, dtype), np.zeros((batch, units), dtype)
    options = dict(activation=activation)
    if variant.masked:
        options["mask"] = np.ones((batch, steps), bool)
    if variant.dropout:
        options.update(input_dropout=np.ones((batch, features), dtype),
                       recurrent_dropout=np.ones((batch, units), dtype))
    with config.override(**variant.settings):
        if not variant.training:
            forward_validated(x, kernel, recurrent, bias, h0, **options)
            return
        outputs, _ = forward_for_training(x, kernel, recurrent, bias, h0, **options)
        backward(x, kernel, recurrent, bias, h0, outputs, np.ones_like(outputs), **options)


class _Counter(event.Listener):
    def __init__(self):
        self.compiled = 0

    def on_start(self, ev):
        pass

    def on_end(self, ev):
        self.compiled += 1


def run(dtypes: tuple[str, ...] = ("float32",), training: bool = False, activation: str = "tanh",
        paths: tuple[str, ...] = PATHS,
        report: Callable[[str], None] = print) -> list[tuple[str, float, int]]:
    """Compile (or load from the cache) every variant of :func:`variants`, reporting a line per
    variant; returns ``(label, seconds, functions compiled)`` for each."""
    results = []
    todo = list(variants(dtypes, training, paths))
    for number, (dtype, variant) in enumerate(todo, 1):
        counter = _Counter()
        start = time.perf_counter()
        with event.install_listener("numba:compile", counter):
            _call(variant, dtype, activation)
        seconds = time.perf_counter() - start
        label = f"{dtype} {activation}, {variant.label}"
        plural = "" if counter.compiled == 1 else "s"
        status = f"compiled {counter.compiled} function{plural}" if counter.compiled else "cached"
        report(f"[{number}/{len(todo)}] {label}: {seconds:.1f} s ({status})")
        results.append((label, seconds, counter.compiled))
    return results
