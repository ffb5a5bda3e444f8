"""Problems, tolerances and comparisons for testing SimpleRNN kernels (the tests and benchmarks use them).

One table of tolerances (:data:`TOLERANCES`, :func:`tolerance`) for every comparison against
the NumPy reference or another library; :func:`make_problem` draws the arrays of one call;
:func:`assert_close` and :func:`assert_close_normwise` compare; :func:`numeric_gradients` and
:func:`assert_gradients_close` check gradients by central differences.

>>> import numpy as np
>>> from simplernn_numba.kernels import reference
>>> p = make_problem(np.random.default_rng(0), batch=2, steps=3, features=4, units=5)
>>> out, state = reference.forward(*p.arrays(), **p.options())
>>> assert_close(out, out, *tolerance(out.dtype))
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

#: (rtol, atol) by kind of comparison and dtype:
#: ``"kernel"`` a compiled kernel against the NumPy reference (same math, other rounding);
#: ``"peer"`` another library's forward pass against ours (other summation orders, other tanh);
#: ``"gradient"`` another library's gradients against ours (sums over B*T terms; the absolute
#: part scaled by the largest entry, see :func:`assert_close`); ``"cuda"`` a CUDA kernel against
#: the reference (other summation order on the GPU); ``"fuzz"`` random problems of any scale
#: against the reference (:func:`assert_close_normwise`: gradients sum over T steps and the batch).
TOLERANCES = {
    "kernel": {"float32": (2e-5, 2e-6), "float64": (1e-10, 1e-12)},
    "peer": {"float32": (1e-4, 1e-4), "float64": (1e-9, 1e-9)},
    "gradient": {"float32": (1e-3, 1e-3), "float64": (1e-9, 1e-9)},
    "cuda": {"float32": (5e-5, 5e-6), "float64": (1e-10, 1e-12)},
    "fuzz": {"float32": (2e-4, 2e-5), "float64": (1e-9, 1e-11)},
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


def assert_close_normwise(ours, expected, dtype, kind: str = "fuzz") -> None:
    """``ours`` (a NumPy or device array of ``dtype``) matches ``expected`` within the ``kind``
    tolerance, the absolute part scaled by the largest finite ``|expected|`` (NaN where NaN)."""
    ours = ours if isinstance(ours, np.ndarray) else ours.copy_to_host()
    rtol, atol = tolerance(dtype, kind)
    assert ours.dtype == np.dtype(dtype) and ours.shape == expected.shape
    finite = np.abs(expected[np.isfinite(expected)])
    scale = float(finite.max()) if finite.size else 0.0
    np.testing.assert_allclose(ours, expected, rtol=rtol, atol=atol + rtol * scale, equal_nan=True)


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


def make_problem(rng: np.random.Generator, batch: int = 3, steps: int = 5, features: int = 4,
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


def numeric_gradients(loss, params: dict, eps: float = 1e-6) -> dict:
    """Central-difference gradient of ``loss(params) -> float`` for every array in ``params``."""
    grads = {}
    for name, value in params.items():
        if value is None:
            grads[name] = None
            continue
        grad = np.zeros_like(value)
        flat, out = value.reshape(-1), grad.reshape(-1)
        for i in range(flat.size):
            keep = flat[i]
            flat[i] = keep + eps
            plus = loss(params)
            flat[i] = keep - eps
            minus = loss(params)
            flat[i] = keep
            out[i] = (plus - minus) / (2 * eps)
        grads[name] = grad
    return grads


def assert_gradients_close(analytic: dict, numeric: dict, rtol: float = 1e-6) -> None:
    """Every array finite and ``max|a - n| <= rtol * max|n|`` (scale floored at 1e-3)."""
    for name, expected in numeric.items():
        got = analytic[name]
        if expected is None:
            assert got is None, name
            continue
        assert got.shape == expected.shape, name
        assert np.isfinite(got).all() and np.isfinite(expected).all(), name
        scale = max(float(np.abs(expected).max()), 1e-3)
        err = float(np.abs(got - expected).max()) / scale
        assert err <= rtol, f"{name}: relative error {err:.2e} > {rtol:.0e}"
