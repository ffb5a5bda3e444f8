"""Numerical edge cases, no crashes on arbitrary input, no recompilation, no memory growth."""

import gc
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numba.core.dispatcher import Dispatcher

from simplernn_numba import SimpleRNN
from simplernn_numba.kernels import cpu, reference
from simplernn_numba.testing import ACTIVATIONS, tolerance

BOUNDED = ["tanh", "sigmoid", "softsign", "hard_sigmoid", "relu6"]


# ---------------------------------------------------------------- numerical edge cases
@pytest.mark.parametrize("activation", BOUNDED)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_huge_inputs_saturate_without_warnings(activation, dtype):
    big = 1e30 if dtype == "float32" else 1e300
    x = np.full((3, 6, 2), big, dtype)
    x[1] *= -1
    layer = SimpleRNN(4, activation=activation, return_sequences=True, dtype=dtype)
    layer.build(x.shape)
    layer.set_weights([np.full((2, 4), 0.5), np.eye(4) * 0.5, np.zeros(4)])
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        out = layer(x)
        ref, _ = reference.forward(x, *layer.get_weights()[:2], layer.bias, np.zeros((3, 4), dtype),
                                   activation=activation)
    assert np.all(np.isfinite(out))
    high = {"tanh": 1, "sigmoid": 1, "softsign": 1, "hard_sigmoid": 1, "relu6": 6}[activation]
    low = {"tanh": -1, "sigmoid": 0, "softsign": -1, "hard_sigmoid": 0, "relu6": 0}[activation]
    # the float32 CPU kernel's fast tanh saturates at 1 - 2**-22 (2 ulp below 1)
    rtol, atol = tolerance(dtype)
    np.testing.assert_allclose(out[0].max(), high, rtol=rtol)
    np.testing.assert_allclose(out[1].min(), low, rtol=rtol, atol=atol)
    assert low <= out.min() and out.max() <= high
    np.testing.assert_allclose(out, ref, rtol=rtol, atol=atol)


def test_float64_path_has_float64_intermediates():
    """An exact float64 sum that float32 (or a float32 intermediate) would round away."""
    tiny = 2.0 ** -40
    x = np.full((1, 9, 1), tiny)
    x[0, 0, 0] = 1.0
    layer = SimpleRNN(1, activation=None, return_sequences=True, return_state=True, dtype="float64")
    layer.build(x.shape)
    layer.set_weights([np.ones((1, 1)), np.ones((1, 1)), np.zeros(1)])
    seq, state = layer(x, initial_state=np.zeros((1, 1)))
    assert seq.dtype == state.dtype == np.float64
    assert state[0, 0] == 1.0 + 8 * tiny
    np.testing.assert_array_equal(seq[0, :, 0], 1.0 + np.arange(9) * tiny)
    out, h = cpu.forward(x, np.ones((1, 1)), np.ones((1, 1)), None, np.zeros((1, 1)),
                         activation="linear", input_dropout=np.ones((1, 1)),
                         recurrent_dropout=np.ones((1, 1)), mask=np.ones((1, 9), bool))
    assert out.dtype == h.dtype == np.float64 and h[0, 0] == 1.0 + 8 * tiny


@pytest.mark.parametrize("activation", ["relu", "relu6", "hard_sigmoid", "leaky_relu", "elu"])
def test_nan_is_not_clipped_away(activation):
    """Branchy activations keep NaN as NaN (a max/min or comparison could turn it into a number).
    Shapes and optional arrays of test_cpu_forward.py's activation test: its compiled variants."""
    arrays = (np.full((3, 5, 4), np.nan), np.ones((4, 6)), np.zeros((6, 6)), np.zeros(6), np.zeros((3, 6)))
    options = dict(mask=np.ones((3, 5), bool), input_dropout=np.ones((3, 4)),
                   recurrent_dropout=np.ones((3, 6)), activation=activation)
    out, h = cpu.forward(*arrays, **options)
    ref, _ = reference.forward(*arrays, **options)
    assert np.isnan(ref).all()
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))


# ---------------------------------------------------------------- errors are exceptions
REAL_DTYPES = ["float16", "float32", "float64", "int8", "uint8", "int64", "bool"]
BAD_DTYPES = ["complex64", "U1", "datetime64[s]"]
UNITS = 3


def _any_array():
    return hnp.arrays(dtype=st.sampled_from(REAL_DTYPES + BAD_DTYPES).map(np.dtype),
                      shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4))


def _expected_error(x, mask, state, built):
    """What the layer (UNITS units; built for 2 features when ``built``) must do with these
    arguments: None (return), or the exception type and a word its message names.

    Inputs: 3-D, real (bool, int or float: cast), at least one step, at least one feature and
    2 once built, any batch. Mask: real, (batch, steps). Initial state: real, (batch, UNITS).
    """
    if x.dtype.kind not in "biuf":
        return TypeError, "inputs"
    if x.ndim != 3 or x.shape[1] == 0 or x.shape[2] == 0 or (built and x.shape[2] != 2):
        return ValueError, "input"
    if mask is not None and mask.dtype.kind not in "biuf":
        return TypeError, "mask"
    if mask is not None and mask.shape != x.shape[:2]:
        return ValueError, "mask"
    if state is not None and state.dtype.kind not in "biuf":
        return TypeError, "initial_state"
    if state is not None and state.shape != (x.shape[0], UNITS):
        return ValueError, "initial_state"
    return None


def _check_call(capfd, x, mask, state, built, activation, training):
    layer = SimpleRNN(UNITS, activation=activation, dropout=0.25, recurrent_dropout=0.25, seed=0,
                      return_state=True)
    if built:
        layer.build((None, None, 2))
    expected = _expected_error(x, mask, state, built)
    if expected is None:
        with np.errstate(all="ignore"):
            out, h = layer(x, mask=mask, initial_state=state, training=training)
        assert out.shape == h.shape == (x.shape[0], UNITS) and out.dtype == h.dtype == np.float32
    else:
        error, word = expected
        with pytest.raises(error, match=word), np.errstate(all="ignore"):
            layer(x, mask=mask, initial_state=state, training=training)
    captured = capfd.readouterr()
    assert captured.out == "" and captured.err == ""


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(x=_any_array(), mask=st.none() | _any_array(), state=st.none() | _any_array(),
       built=st.booleans(), activation=st.sampled_from(ACTIVATIONS), training=st.booleans())
def test_arbitrary_input_returns_or_raises_cleanly(capfd, x, mask, state, built, activation,
                                                   training):
    _check_call(capfd, x, mask, state, built, activation, training)


@st.composite
def _valid_or_one_defect(draw):
    """(x, mask, state, built): a valid call, or one with a single defect (most arbitrary
    arrays have several, so the test above seldom draws a valid call)."""
    built = draw(st.booleans())
    batch, steps = draw(st.integers(0, 3)), draw(st.integers(1, 3))
    features = 2 if built else draw(st.integers(1, 3))

    def array(shape, dtypes=REAL_DTYPES):
        return draw(hnp.arrays(st.sampled_from(dtypes).map(np.dtype), shape))

    x = array((batch, steps, features))
    mask = draw(st.none() | st.just((batch, steps)).map(array))
    state = draw(st.none() | st.just((batch, UNITS)).map(array))
    defect = draw(st.sampled_from([None, None, None, "x rank", "x steps", "x features", "x dtype",
                                   "mask shape", "mask dtype", "state shape", "state dtype"]))
    if defect == "x rank":
        x = x.reshape(batch, -1) if draw(st.booleans()) else x[..., None]
    elif defect == "x steps":
        x = x[:, :0]
        mask = None if mask is None else mask[:, :0]
    elif defect == "x features":
        x, built = array((batch, steps, 3)), True
    elif defect == "x dtype":
        x = array(x.shape, BAD_DTYPES)
    elif defect == "mask shape":
        mask = array((batch, steps + 1))
    elif defect == "mask dtype":
        mask = array((batch, steps), BAD_DTYPES)
    elif defect == "state shape":
        state = array((batch, UNITS + 1))
    elif defect == "state dtype":
        state = array((batch, UNITS), BAD_DTYPES)
    return x, mask, state, built


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(call=_valid_or_one_defect(), training=st.booleans())
def test_valid_input_is_accepted_and_each_defect_refused(capfd, call, training):
    _check_call(capfd, *call, "tanh", training)


# ---------------------------------------------------------------- resources
def _warm_signature_count() -> int:
    """Compiled specialisations of every Numba function of the CPU kernels."""
    from simplernn_numba.kernels.cpu import backward_pass, gemm, lanes, launch, panels, products, rows, step

    modules = (backward_pass, gemm, lanes, launch, panels, products, rows, step)
    return sum(len(f.signatures) for module in modules for f in vars(module).values()
               if isinstance(f, Dispatcher))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_no_recompilation_after_first_call(rng, dtype):
    """New shapes, go_backwards, return flags and input layouts reuse the compiled code: warmed
    with each option set once, on a batch of one row and of several (a single row has a plan of
    its own), the calls that follow compile nothing. (Each activation, each set of options
    present or absent, and each tile shape of the rows path is a variant of its own, compiled on
    first use: the shapes below keep the warm-up's tile.)"""
    def configs():  # (use_bias, masked, training): 4 of the 8 specialisations, to keep cold CI short
        yield from ((True, True, True), (True, False, False), (False, True, False), (False, False, True))

    def call(use_bias, masked, training, batch=3, steps=4, units=5, activation="tanh",
             go_backwards=False, layout="C"):
        x = rng.standard_normal((batch, steps, 2))
        h0 = rng.standard_normal((batch, units)).astype(dtype)
        mask = rng.random((batch, steps)) > 0.3 if masked else None
        if layout == "F":
            x, h0 = np.asfortranarray(x), np.asfortranarray(h0)
        elif layout == "readonly":
            h0.flags.writeable = False
            if mask is not None:
                mask.flags.writeable = False
        layer = SimpleRNN(units, activation=activation, use_bias=use_bias, go_backwards=go_backwards,
                          recurrent_dropout=0.3, return_sequences=bool(batch % 2), dtype=dtype)
        layer(x, mask=mask, initial_state=h0, training=training)

    for combo in configs():
        call(*combo)
        call(*combo, batch=1)
    count = _warm_signature_count()
    for combo in configs():
        call(*combo, batch=0, steps=1, units=1)
        call(*combo, batch=5, steps=7, units=7, go_backwards=True, layout="F")
        call(*combo, batch=1, steps=3, units=2, layout="readonly")
    assert _warm_signature_count() == count


def _rss_bytes() -> int | None:
    statm = Path("/proc/self/statm")
    if not statm.exists():
        return None
    import os
    return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_ten_thousand_calls_do_not_grow_memory(rng):
    x = rng.standard_normal((4, 5, 3)).astype(np.float32)
    mask = rng.random((4, 5)) > 0.2
    layer = SimpleRNN(4, dropout=0.2, return_sequences=True, return_state=True, seed=0)
    stateful = SimpleRNN(4, stateful=True)
    for _ in range(200):
        layer(x, mask=mask, training=True)
        stateful(x)
    gc.collect()
    rss_before = _rss_bytes()
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(5000):
            layer(x, mask=mask, training=True)
            stateful(x)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert after - before < 256 * 1024, f"Python heap grew by {after - before} bytes"
    if rss_before is not None:
        assert _rss_bytes() - rss_before < 64 * 2**20


def test_reference_backward_handles_empty_batch():
    x, kernel, recurrent = np.zeros((0, 3, 2)), np.ones((2, 4)), np.ones((4, 4))
    outputs, _ = reference.forward(x, kernel, recurrent, np.zeros(4), np.zeros((0, 4)))
    grads = reference.backward(x, kernel, recurrent, np.zeros(4), np.zeros((0, 4)), outputs,
                               np.zeros_like(outputs))
    assert grads["inputs"].shape == (0, 3, 2) and grads["initial_state"].shape == (0, 4)
    np.testing.assert_array_equal(grads["kernel"], np.zeros((2, 4)))
    np.testing.assert_array_equal(grads["recurrent_kernel"], np.zeros((4, 4)))
    np.testing.assert_array_equal(grads["bias"], np.zeros(4))
