"""Random SimpleRNN problems shared by the kernel tests (and the benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Activations with compiled kernels, by registry name.
ACTIVATIONS = ("linear", "tanh", "relu", "sigmoid", "elu", "selu", "softplus", "softsign",
               "hard_sigmoid", "exponential", "silu", "gelu", "relu6", "leaky_relu", "mish",
               "hard_silu")


@dataclass
class Problem:
    x: np.ndarray
    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    bias: np.ndarray | None
    initial_state: np.ndarray
    mask: np.ndarray | None
    input_dropout: np.ndarray | None
    recurrent_dropout: np.ndarray | None

    def arrays(self):
        return self.x, self.kernel, self.recurrent_kernel, self.bias, self.initial_state

    def options(self):
        return dict(mask=self.mask, input_dropout=self.input_dropout,
                    recurrent_dropout=self.recurrent_dropout)


def make_problem(rng, batch=3, steps=5, features=4, units=6, dtype=np.float64, *,
                 use_bias=True, masked=False, dropout=False, scale=0.4) -> Problem:
    """A random problem; with ``masked``, row 0 is fully masked and others random."""
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
