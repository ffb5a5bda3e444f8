"""simplernn_numba.compiled: steps and sequences from Python and from users' @njit code."""

import numpy as np
import pytest
from numba import errors, njit, prange, types

from simplernn_numba import SimpleRNN, activations, compiled
from simplernn_numba.kernels import reference
from simplernn_numba.kernels.cpu.activation import choose
from simplernn_numba.testing import tolerance


@njit
def _step_loop(x, h0, kernel, recurrent_kernel, bias, outputs, activation):
    """A user's loop: each step's output a slice ``outputs[:, t]``, the state read back from it."""
    h = h0
    for t in range(x.shape[1]):
        compiled.step(x[:, t], h, kernel, recurrent_kernel, bias, outputs[:, t], activation)
        h = outputs[:, t]


@njit
def _in_place_loop(x, h, kernel, recurrent_kernel, bias):
    """``out`` is ``state``: the default activation, tanh."""
    for t in range(x.shape[1]):
        compiled.step(x[:, t], h, kernel, recurrent_kernel, bias, h)
    return h


@njit(parallel=True)
def _sequences(x, h0, kernel, recurrent_kernel, bias, outputs):
    """Independent sequences in a prange, one single-sequence (T, F) forward each."""
    for i in prange(x.shape[0]):
        compiled.forward(x[i], h0[i], kernel, recurrent_kernel, bias, outputs[i], "tanh")


@njit(parallel=True)
def _rows(x, h0, kernel, recurrent_kernel, bias, outputs):
    """Batch rows in a prange, each stepped as a 1-D row."""
    for b in prange(x.shape[0]):
        h = h0[b]
        for t in range(x.shape[1]):
            compiled.step(x[b, t], h, kernel, recurrent_kernel, bias, outputs[b, t], "tanh")
            h = outputs[b, t]


def _problem(dtype, batch=3, steps=6, features=4, units=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, steps, features)).astype(dtype)
    h0 = rng.normal(scale=0.5, size=(batch, units)).astype(dtype)
    kernel = rng.normal(scale=0.4, size=(features, units)).astype(dtype)
    recurrent_kernel = rng.normal(scale=0.4, size=(units, units)).astype(dtype)
    bias = rng.normal(scale=0.1, size=units).astype(dtype)
    return x, h0, kernel, recurrent_kernel, bias


def _expected(x, h0, kernel, recurrent_kernel, bias, activation="tanh"):
    return reference.forward(x, kernel, recurrent_kernel, bias, h0, activation=activation)[0]


#: Units that take the step kernel's vector path and its scalar tail at any vector width.
VECTOR_UNITS = 37


@njit
def _fresh_arrays(kernel, recurrent_kernel, bias):
    """A step whose inputs and output are temporaries made in the call's own expression."""
    features, units = kernel.shape
    return _stepped(np.full((2, features), 0.5, kernel.dtype), np.full((2, units), -0.25, kernel.dtype),
                    kernel, recurrent_kernel, bias, np.empty((2, units), kernel.dtype))


#: An activation given as a module-level constant (compiled as a literal).
ACTIVATION = "tanh"


@njit
def _stepped(x_t, state, kernel, recurrent_kernel, bias, out):
    compiled.step(x_t, state, kernel, recurrent_kernel, bias, out, ACTIVATION)
    return out


def test_every_activation_name_selects_its_kernel_code():
    """Each name, alias or not, compiles the kernels' code of its activation (from compiled code:
    the literal's typing; from Python the same ``choose``), and an unknown name is refused."""
    for name in activations.NAMES:
        act = choose(activations.canonical_name(name))
        assert compiled._compiled_activation(types.literal(name)) == act
        assert compiled._compiled_activation(types.Omitted(name)) == act
    assert compiled._compiled_activation(types.unicode_type) is None  # asks for the literal
    assert "Unknown activation 'Tanh'" in compiled._compiled_activation(types.literal("Tanh"))


#: Activations of each kind stepped through the kernel: tanh (code of its own), piecewise ones,
#: exp-based ones, one by erf. Every activation's code is the kernels' one function
#: (``kernels.cpu.activation``), checked against the reference for every activation in
#: tests/kernels/cpu; each activation is a compiled variant of the step kernel of its own.
STEPPED = ("tanh", "relu", "hard_silu", "sigmoid", "elu", "gelu")


@pytest.mark.parametrize("activation", STEPPED)
def test_activations_of_each_kind(activation):
    """Stepped from Python (the entry compiled per activation is cached on disk). ``forward``
    runs the same kernel variant (tested with tanh and relu below, where compiled code reads the
    activation from the caller's literal the same way)."""
    x, h0, k, r, b = _problem(np.float64, units=VECTOR_UNITS)
    expected = _expected(x, h0, k, r, b, activation)
    state = h0
    for t in range(x.shape[1]):
        out = np.full_like(h0, np.nan)
        compiled.step(x[:, t], state, k, r, b, out, activation)  # a strided x_t
        np.testing.assert_allclose(out, expected[:, t], rtol=1e-12, atol=1e-12)
        state = out


def test_an_alias_names_the_same_activation():
    x, h0, k, r, b = _problem(np.float64)
    outputs = np.empty((3, 6, 5))
    compiled.forward(x, h0, k, r, b, outputs, "swish")
    np.testing.assert_allclose(outputs, _expected(x, h0, k, r, b, "silu"), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype, activation", [("float32", "tanh"), ("float64", "relu")])
def test_equals_the_layer_with_strided_inputs_and_transposed_weights(dtype, activation):
    layer = SimpleRNN(VECTOR_UNITS, activation=activation, return_sequences=True, dtype=dtype)
    x, h0, *_ = _problem(dtype, units=VECTOR_UNITS)
    expected = layer(x, initial_state=h0)
    kernel = np.asfortranarray(layer.kernel)  # a transposed array's layout
    recurrent_kernel = layer.recurrent_kernel.T.copy().T
    bias = np.repeat(layer.bias, 2)[::2]  # strided
    x_strided = np.repeat(x, 2, axis=2)[:, :, ::2]
    assert not (kernel.flags.c_contiguous or recurrent_kernel.flags.c_contiguous or bias.flags.contiguous)
    rtol, atol = tolerance(dtype)
    for weights in ((layer.kernel, layer.recurrent_kernel, layer.bias), (kernel, recurrent_kernel, bias)):
        outputs = np.empty_like(expected)
        _step_loop(x_strided, h0, *weights, outputs, activation)
        np.testing.assert_allclose(outputs, expected, rtol=rtol, atol=atol)
        outputs = np.empty_like(expected)
        compiled.forward(x_strided, h0, *weights, outputs, activation)
        np.testing.assert_allclose(outputs, expected, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_out_may_be_the_state(dtype):
    x, h0, k, r, b = _problem(dtype, units=VECTOR_UNITS)
    rtol, atol = tolerance(dtype)
    h = h0.copy()
    _in_place_loop(x, h, k, r, b)
    np.testing.assert_allclose(h, _expected(x, h0, k, r, b)[:, -1], rtol=rtol, atol=atol)
    h = h0.copy()  # from Python, and on one row
    compiled.step(x[0, 0], h[0], k, r, b, h[0])
    np.testing.assert_allclose(h[0], _expected(x[:1, :1], h0[:1], k, r, b)[0, 0], rtol=rtol, atol=atol)


def test_temporary_arguments_live_until_the_step_returns():
    """The step borrows its arrays from the caller (no reference counts): arrays made for the call
    alone must not be released before it reads them."""
    _, _, k, r, b = _problem(np.float32, units=VECTOR_UNITS)
    out = _fresh_arrays(k, r, b)
    x_t, h = np.full((2, k.shape[0]), 0.5, np.float32), np.full((2, VECTOR_UNITS), -0.25, np.float32)
    expected = _expected(x_t[:, None], h, k, r, b)[:, 0]
    rtol, atol = tolerance("float32")
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=atol)


def test_forward_initial_state_may_overlap_outputs():
    x, h0, k, r, b = _problem(np.float64)
    expected = _expected(x, h0, k, r, b)
    outputs = np.empty_like(expected)
    outputs[:, 0] = h0  # the initial state is the first row of outputs, overwritten by step 0
    compiled.forward(x, outputs[:, 0], k, r, b, outputs)
    np.testing.assert_allclose(outputs, expected, rtol=1e-12, atol=1e-12)


def test_prange_over_sequences_and_rows():
    x, h0, k, r, b = _problem(np.float32, batch=8)
    expected = _expected(x, h0, k, r, b)
    rtol, atol = tolerance("float32")
    for run in (_sequences, _rows):
        outputs = np.full_like(expected, np.nan)
        run(x, h0, k, r, b, outputs)
        np.testing.assert_allclose(outputs, expected, rtol=rtol, atol=atol)


def test_shape_mismatches_in_compiled_code_raise_value_error():
    x, h0, k, r, b = _problem(np.float64)
    outputs = np.empty((3, 6, 5))
    with pytest.raises(ValueError, match="state must have shape"):
        _step_loop(x, h0[:2], k, r, b, outputs, "tanh")
    with pytest.raises(ValueError, match="recurrent_kernel"):
        _step_loop(x, h0, k, r[:4], b, outputs, "tanh")
    with pytest.raises(ValueError, match="kernel.shape"):
        _step_loop(x[:, :, :3], h0, k, r, b, outputs, "tanh")
    with pytest.raises(ValueError, match="bias"):
        _step_loop(x, h0, k, r, b[:4], outputs, "tanh")
    with pytest.raises(ValueError, match="out must have shape"):
        _step_loop(x, h0, k, r, b, outputs[:, :, :4], "tanh")


def test_outputs_overlapping_inputs_are_refused():
    x, h0, k, r, b = _problem(np.float64, features=5)
    with pytest.raises(ValueError, match="must not overlap"):
        compiled.forward(x, h0, k, r, b, x)


def test_unknown_activation_and_mixed_dtypes_from_compiled_code():
    x, h0, k, r, b = _problem(np.float64)
    outputs = np.empty((3, 6, 5))
    with pytest.raises(ValueError, match="Did you mean 'relu'"):  # raised when it runs
        _step_loop(x, h0, k, r, b, outputs, "rleu")
    with pytest.raises(errors.TypingError, match="one dtype"):
        _in_place_loop(x, h0.astype(np.float32), k, r, b)


def test_python_errors_name_what_is_wrong():
    x, h0, k, r, b = _problem(np.float64)
    out = np.empty((3, 5))
    with pytest.raises(TypeError, match="out must be a NumPy array"):
        compiled.step(x[:, 0], h0, k, r, b, [[0.0] * 5] * 3)
    with pytest.raises(ValueError, match=r"state must have shape \(3, 5\); received shape \(2, 5\)"):
        compiled.step(x[:, 0], h0[:2], k, r, b, out)
    with pytest.raises(ValueError, match=r"recurrent_kernel must have shape \(5, 5\)"):
        compiled.step(x[:, 0], h0, k, r[:4], b, out)
    with pytest.raises(ValueError, match="Did you mean 'relu'"):
        compiled.step(x[:, 0], h0, k, r, b, out, "rleu")
    with pytest.raises(TypeError, match="activation must be"):
        compiled.step(x[:, 0], h0, k, r, b, out, np.tanh)
    with pytest.raises(ValueError, match=r"outputs must have shape \(3, 6, 5\)"):
        compiled.forward(x, h0, k, r, b, np.empty((3, 5, 5)))
    read_only = out.copy()
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        compiled.step(x[:, 0], h0, k, r, b, read_only)
