"""Shapes, random problems and tolerances shared by the tests and the benchmarks.

One table for both: the benchmarks time :class:`Case` problems, the kernel tests draw
:func:`random_problem` ones, and every comparison takes its ``(rtol, atol)`` from
:func:`tolerance`.

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

#: Activations with compiled kernels, by registry name.
ACTIVATIONS = ("linear", "tanh", "relu", "sigmoid", "elu", "selu", "softplus", "softsign",
               "hard_sigmoid", "exponential", "silu", "gelu", "relu6", "leaky_relu", "mish",
               "hard_silu")

#: (batch, timesteps, features, units) of the benchmark grid.
GRID = ((32, 10, 8, 4), (1, 1000, 16, 64), (64, 100, 128, 128), (16, 500, 32, 32),
        (128, 200, 512, 512))

#: Shapes of ``--neighbour`` (quiet against a busy neighbour): the panels plan at three sizes,
#: the rows plan, the lanes plan.
NEIGHBOUR_GRID = ((256, 30, 64, 256), (64, 100, 128, 128), (96, 60, 48, 160), (32, 400, 16, 48),
                  (512, 100, 8, 16))

#: Shapes of ``--per-step`` (one or two sequences at a time, weights in L1).
PER_STEP_GRID = ((1, 2000, 8, 32), (2, 800, 24, 48), (1, 1000, 16, 64))

#: (rtol, atol) by kind of comparison and dtype:
#: ``"kernel"`` a compiled kernel against the NumPy reference (same math, other rounding);
#: ``"peer"`` another library's forward pass against ours (other summation orders, other tanh);
#: ``"gradient"`` another library's gradients against ours (sums over B*T terms; the absolute
#: part scaled by the largest entry, see :func:`assert_close`).
TOLERANCES = {
    "kernel": {"float32": (2e-5, 2e-6), "float64": (1e-10, 1e-12)},
    "peer": {"float32": (1e-4, 1e-4), "float64": (1e-9, 1e-9)},
    "gradient": {"float32": (1e-3, 1e-3), "float64": (1e-9, 1e-9)},
}


def tolerance(dtype, kind: str = "kernel") -> tuple[float, float]:
    """``(rtol, atol)`` for a comparison of ``kind`` (a key of :data:`TOLERANCES`) at ``dtype``."""
    return TOLERANCES[kind][np.dtype(dtype).name]


def assert_close(out, expected, rtol: float, atol: float) -> None:
    """``out`` matches ``expected`` (an array or a tuple of arrays, such as gradients).

    ``atol`` is relative to the largest magnitude in each expected array when that exceeds 1
    (outputs in [-1, 1] keep the plain absolute tolerance; gradients scale with B*T).
    """
    pairs = zip(out, expected, strict=True) if isinstance(expected, tuple) else [(out, expected)]
    for o, e in pairs:
        scale = max(1.0, float(np.abs(e).max(initial=0.0)))
        np.testing.assert_allclose(o, e, rtol=rtol, atol=atol * scale)


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


@dataclass
class Problem:
    """The arrays of one SimpleRNN call, in the kernel contract's names and shapes."""

    x: np.ndarray
    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    bias: np.ndarray | None
    initial_state: np.ndarray
    mask: np.ndarray | None
    input_dropout: np.ndarray | None
    recurrent_dropout: np.ndarray | None

    def arrays(self):
        """``(x, kernel, recurrent_kernel, bias, initial_state)``: the kernels' positional arguments."""
        return self.x, self.kernel, self.recurrent_kernel, self.bias, self.initial_state

    def options(self):
        """The kernels' optional array keywords."""
        return dict(mask=self.mask, input_dropout=self.input_dropout,
                    recurrent_dropout=self.recurrent_dropout)


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


def random_problem(rng: np.random.Generator, batch: int = 3, steps: int = 5, features: int = 4,
                   units: int = 6, dtype=np.float64, *, use_bias: bool = True, masked: bool = False,
                   dropout: bool = False, scale: float = 0.4) -> Problem:
    """A problem with normal(0, ``scale``) weights, inputs and initial state.

    With ``masked``, row 0 is fully masked, row 1 has its first and last steps masked and the
    other steps are masked at random; with ``dropout``, both dropout multipliers are drawn.
    """
    def normal(*shape):
        return (rng.normal(size=shape) * scale).astype(dtype)

    mask = None
    if masked:
        mask = rng.random((batch, steps)) > 0.35
        mask[0] = False
        if batch > 1:
            mask[1, 0] = False
            mask[1, -1] = False
    in_drop = rec_drop = None
    if dropout:
        in_drop = ((rng.random((batch, features)) > 0.3) / 0.7).astype(dtype)
        rec_drop = ((rng.random((batch, units)) > 0.2) / 0.8).astype(dtype)
    return Problem(
        x=normal(batch, steps, features), kernel=normal(features, units),
        recurrent_kernel=normal(units, units), bias=normal(units) if use_bias else None,
        initial_state=normal(batch, units), mask=mask, input_dropout=in_drop,
        recurrent_dropout=rec_drop,
    )
