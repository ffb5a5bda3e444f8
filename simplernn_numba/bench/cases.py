"""The benchmark cases: shapes (:data:`GRID`, :class:`Case`) and their problems (:func:`case_problem`).

Problems, tolerances and comparisons come from :mod:`simplernn_numba.testing`, the one table the
tests use too.

>>> case = Case(2, 3, 4, 5)
>>> case.label, case.flops
('2,3,4,5', 540)
>>> p = case_problem(case)
>>> p.x.shape, p.kernel.shape, p.initial_state.shape
((2, 3, 4), (4, 5), (2, 5))
>>> tolerance("float32"), tolerance("float64", "peer")
((2e-05, 2e-06), (1e-09, 1e-09))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..testing import ACTIVATIONS, TOLERANCES, Problem, assert_close, tolerance

__all__ = ["ACTIVATIONS", "GRID", "TOLERANCES", "Case", "Problem", "assert_close", "case_problem",
           "default_cases", "parse_case", "tolerance"]

#: (batch, timesteps, features, units) of the benchmark grid.
GRID = ((32, 10, 8, 4), (1, 1000, 16, 64), (64, 100, 128, 128), (16, 500, 32, 32),
        (128, 200, 512, 512))

#: Shapes of ``--neighbour`` (quiet against a busy neighbour): the panels plan at three sizes,
#: the rows plan, the lanes plan.
NEIGHBOUR_GRID = ((256, 30, 64, 256), (64, 100, 128, 128), (96, 60, 48, 160), (32, 400, 16, 48),
                  (512, 100, 8, 16))

#: Shapes of ``--per-step`` (one or two sequences at a time, weights in L1).
PER_STEP_GRID = ((1, 2000, 8, 32), (2, 800, 24, 48), (1, 1000, 16, 64))


@dataclass(frozen=True)
class Case:
    """One benchmark problem: a tanh forward with ``return_sequences=True``."""

    batch: int
    steps: int
    features: int
    units: int
    dtype: str = "float32"
    masked: bool = False

    @property
    def label(self) -> str:
        extra = "" if self.dtype == "float32" else f" {self.dtype}"
        return f"{self.batch},{self.steps},{self.features},{self.units}{extra}" + (
            " masked" if self.masked else "")

    @property
    def flops(self) -> int:
        """Multiply-adds x2 of one forward call: projection plus recurrence."""
        return 2 * self.batch * self.steps * (self.features + self.units) * self.units


def default_cases() -> list[Case]:
    """The grid plus a float64 and a masked variant of 64,100,128,128."""
    return [Case(*g) for g in GRID] + [Case(64, 100, 128, 128, "float64"),
                                       Case(64, 100, 128, 128, masked=True)]


def parse_case(text: str) -> Case:
    """``"B,T,F,U"`` with optional ``",float64"`` and/or ``",masked"`` suffixes."""
    parts = text.split(",")
    dims = [int(v) for v in parts[:4]]
    extra = parts[4:]
    return Case(*dims, dtype="float64" if "float64" in extra else "float32",
                masked="masked" in extra)


def case_problem(case: Case, seed: int = 0) -> Problem:
    """Random inputs and Keras-like weights (Glorot kernel, orthogonal recurrent kernel) for
    ``case``, zero initial state; with ``case.masked`` about a fifth of the steps are masked
    (never the first)."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(case.dtype)
    f, u = case.features, case.units
    limit = np.sqrt(6.0 / (f + u))
    q, _ = np.linalg.qr(rng.normal(size=(u, u)))
    mask = None
    if case.masked:
        mask = rng.random((case.batch, case.steps)) > 0.2
        mask[:, 0] = True
    return Problem(
        x=rng.normal(size=(case.batch, case.steps, f)).astype(dt),
        kernel=rng.uniform(-limit, limit, size=(f, u)).astype(dt),
        recurrent_kernel=q.astype(dt),
        bias=(0.1 * rng.normal(size=u)).astype(dt),
        initial_state=np.zeros((case.batch, u), dt),
        mask=mask, input_dropout=None, recurrent_dropout=None,
    )
