"""Hypothesis strategies for random SimpleRNN problems (shared by the fuzz tests)."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

#: The fuzz tests vary shapes, masks, dropout and flags, over activations of each kind. Each
#: (activation, dtype, set of optional arrays) is a compiled variant of its own, and every
#: activation is checked against the reference in test_cpu_backward.py and against Keras in
#: test_keras_parity.py: the fuzz takes the kinds whose code differs. In a backward pass: a
#: derivative from the output (the vectorised tanh) and one from the pre-activation (gelu).
FUZZ_ACTIVATIONS = ("tanh", "gelu")
#: The forward fuzz, by dtype: in a forward pass the activation is one function applied where the
#: kernels' code is otherwise the same, so two kinds vary shapes and flags, one in each dtype: the
#: tanh vectorised in float32 registers, and a piecewise unbounded one (relu) in float64.
FORWARD_FUZZ_ACTIVATIONS = {"float32": ("tanh",), "float64": ("relu",)}


@st.composite
def problems(draw, max_batch=5, max_steps=12, max_features=8, max_units=16,
             activations=FUZZ_ACTIVATIONS):
    """A dict of kernel arguments drawn at random: shapes, dtype, activation, flags and masks.

    Array values come from a NumPy generator seeded by hypothesis (fast); masks
    may contain all-False rows; the initial state is zeros or random. ``activations``: names, or
    names by dtype name.
    """
    batch = draw(st.integers(0, max_batch))
    steps = draw(st.integers(1, max_steps))
    features = draw(st.integers(1, max_features))
    units = draw(st.integers(1, max_units))
    dtype = np.dtype(draw(st.sampled_from(["float32", "float64"])))
    activation = draw(st.sampled_from(activations[dtype.name] if isinstance(activations, dict)
                                      else activations))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([0.1, 0.4, 1.0]))

    def normal(*shape):
        return (rng.normal(size=shape) * scale).astype(dtype)

    mask = None
    if draw(st.booleans()):
        mask = rng.random((batch, steps)) < draw(st.sampled_from([0.3, 0.7, 1.0]))
        if batch and draw(st.booleans()):
            mask[rng.integers(batch)] = False  # an all-false row
    input_dropout = recurrent_dropout = None
    if draw(st.booleans()):
        input_dropout = ((rng.random((batch, features)) > 0.3) / 0.7).astype(dtype)
    if draw(st.booleans()):
        recurrent_dropout = ((rng.random((batch, units)) > 0.3) / 0.7).astype(dtype)
    zeros_state = draw(st.booleans())
    return dict(
        x=normal(batch, steps, features), kernel=normal(features, units),
        # spectral radius about `scale` (as with Keras' orthogonal initializer at scale 1): with a
        # chaotic, expanding recurrence float32 rounding differences grow without bound
        recurrent_kernel=(normal(units, units) / np.sqrt(units)).astype(dtype),
        bias=normal(units) if draw(st.booleans()) else None,
        initial_state=np.zeros((batch, units), dtype) if zeros_state else normal(batch, units),
        mask=mask, input_dropout=input_dropout, recurrent_dropout=recurrent_dropout,
        go_backwards=draw(st.booleans()), activation=activation,
        return_sequences=draw(st.booleans()),
    )


def split(problem: dict):
    """(positional arrays, keyword options) for ``forward(*arrays, **options)``."""
    kw = dict(problem)
    arrays = tuple(kw.pop(k) for k in ("x", "kernel", "recurrent_kernel", "bias", "initial_state"))
    return arrays, kw
