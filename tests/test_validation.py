"""Every public entry rejects bad input with a clear error before any kernel runs."""

import warnings

import numpy as np
import pytest

from simplernn_numba import SimpleRNN, _validate, forward
from simplernn_numba.kernels import cpu


def built(units=3, features=2, **kwargs):
    layer = SimpleRNN(units, **kwargs)
    layer.build((None, 4, features))
    return layer


X = np.ones((2, 4, 2), np.float32)

BAD_CALLS = [
    # (name, inputs, call kwargs, error, message regex)
    ("scalar input", np.float32(1), {}, ValueError, r"3-D.*received shape \(\)"),
    ("rank 4", np.ones((1, 2, 4, 2)), {}, ValueError, r"3-D.*\(1, 2, 4, 2\)"),
    ("ragged list", [[[1, 2]], [[1]]], {}, ValueError, "inputs could not be converted"),
    ("object", np.full((2, 4, 2), None), {}, TypeError, "received dtype object"),
    ("datetime", np.zeros((2, 4, 2), "datetime64[s]"), {}, TypeError, "datetime64"),
    ("timedelta", np.zeros((2, 4, 2), "timedelta64[s]"), {}, TypeError, "timedelta64"),
    ("unicode", np.zeros((2, 4, 2), "U3"), {}, TypeError, "<U3"),
    ("bytes", np.zeros((2, 4, 2), "S3"), {}, TypeError, "S3"),
    ("structured", np.zeros((2, 4, 2), [("a", "f4")]), {}, TypeError, "dtype"),
    ("complex", X.astype(complex), {}, TypeError, "complex128"),
    ("features", np.ones((2, 4, 3)), {}, ValueError, "inputs have 3 features.*built for 2 features"),
    ("timesteps 0", np.ones((2, 0, 2)), {}, ValueError, "at least one timestep"),
    ("mask rank 3", X, {"mask": np.ones((2, 4, 1), bool)}, ValueError, r"mask.*\(2, 4\).*\(2, 4, 1\)"),
    ("mask scalar", X, {"mask": True}, ValueError, r"mask.*\(2, 4\).*received shape \(\)"),
    ("mask batch", X, {"mask": np.ones((3, 4), bool)}, ValueError, r"\(3, 4\)"),
    ("mask strings", X, {"mask": np.array([["a"] * 4] * 2)}, TypeError, "mask.*<U1"),
    ("mask objects", X, {"mask": np.full((2, 4), None)}, TypeError, "mask.*object"),
    ("state 1-D", X, {"initial_state": np.zeros(3)}, ValueError, r"initial_state.*\(2, 3\).*\(3,\)"),
    ("state 3-D", X, {"initial_state": np.zeros((1, 2, 3))}, ValueError, r"\(1, 2, 3\)"),
    ("state units", X, {"initial_state": np.zeros((2, 4))}, ValueError, r"\(2, 3\).*\(2, 4\)"),
    ("state complex", X, {"initial_state": np.zeros((2, 3), complex)}, TypeError, "complex"),
    ("two states", X, {"initial_state": (np.zeros((2, 3)),) * 2}, ValueError, "1 state.*2 values"),
    ("empty state list", X, {"initial_state": []}, ValueError, "1 state.*0 values"),
    ("state dict", X, {"initial_state": {"a": 1}}, TypeError, "object"),
    ("state string", X, {"initial_state": "abc"}, TypeError, "<U3"),
]


@pytest.mark.parametrize("name,inputs,kwargs,error,match", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_calls_raise_clear_errors(name, inputs, kwargs, error, match):
    with pytest.raises(error, match=match):
        built()(inputs, **kwargs)


BAD_WEIGHTS = [
    ("kernel shape", lambda lay: lay.set_weights([np.zeros((3, 3)), np.zeros((3, 3)), np.zeros(3)]),
     ValueError, r"kernel.*\(2, 3\).*\(3, 3\)"),
    ("complex kernel", lambda lay: lay.set_weights([np.zeros((2, 3), complex), np.zeros((3, 3)),
                                                np.zeros(3)]), TypeError, "complex"),
    ("None", lambda lay: lay.set_weights(None), TypeError, "expects a list of 3 weights.*NoneType"),
    ("too few", lambda lay: lay.set_weights([np.zeros((2, 3))]), ValueError, "expects 3 weights.*1"),
    ("None item", lambda lay: lay.set_weights([None, np.zeros((3, 3)), np.zeros(3)]), TypeError, "object"),
    ("kernel setter", lambda lay: setattr(lay, "kernel", np.zeros((3, 2))), ValueError, r"\(3, 2\)"),
    ("bias scalar", lambda lay: setattr(lay, "bias", 1.0), ValueError, r"bias.*\(3,\).*received shape \(\)"),
    ("recurrent str", lambda lay: setattr(lay, "recurrent_kernel", "x"), TypeError, "recurrent_kernel"),
]


@pytest.mark.parametrize("name,action,error,match", BAD_WEIGHTS, ids=[c[0] for c in BAD_WEIGHTS])
def test_bad_weights_raise_and_leave_weights_unchanged(name, action, error, match):
    layer = built()
    before = layer.get_weights()
    with pytest.raises(error, match=match):
        action(layer)
    for old, new in zip(before, layer.get_weights()):
        np.testing.assert_array_equal(old, new)


@pytest.mark.parametrize("shape,error,match", [
    ((4, 2), ValueError, r"\(batch, timesteps, features\).*\(4, 2\)"),
    ((-1, 4, 2), ValueError, "batch size.*>= 0"),
    ((2.5, 4, 2), ValueError, "batch size"),
    ((None, -4, 2), ValueError, "timesteps"),
    ((None, 4, 0), ValueError, r"input_shape\[-1\].*got 0"),
    ((None, 4, None), ValueError, "known feature size"),
    ("abc", TypeError, "must be a tuple"),
    (5, TypeError, "must be a tuple"),
])
def test_bad_build_shapes(shape, error, match):
    with pytest.raises(error, match=match):
        SimpleRNN(3, stateful=True).build(shape)


def test_bad_batch_input_shape_in_constructor():
    with pytest.raises(ValueError, match="batch size"):
        SimpleRNN(3, stateful=True, input_shape=(4, 2), batch_size="2")


@pytest.mark.parametrize("dtype", [np.float16, np.longdouble, np.int8, np.uint64, np.bool_])
def test_real_dtypes_are_cast_to_the_layer_dtype(dtype):
    layer = built(dtype="float64")
    out = layer(X.astype(dtype), initial_state=np.zeros((2, 3), dtype), mask=np.ones((2, 4), dtype))
    # a mask, even of ones, takes the masked plan: compare with the same plan on float64 arrays
    np.testing.assert_array_equal(out, layer(X.astype(np.float64), mask=np.ones((2, 4), bool)))
    assert out.dtype == np.float64


def test_out_of_float32_range_values_cast_to_inf_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        arr = _validate.inputs(np.full((2, 4, 2), -1e300), np.dtype(np.float32))
    assert arr.dtype == np.float32 and np.all(arr == -np.inf)


@pytest.mark.parametrize("layout", ["fortran", "transposed", "strided", "broadcast", "readonly"])
def test_memory_layouts_give_identical_results(rng, layout):
    x = rng.standard_normal((3, 5, 2))
    h0 = rng.standard_normal((3, 3))
    mask = rng.random((3, 5)) > 0.3
    layer = built(return_sequences=True, dtype="float64")
    want = layer(x, initial_state=h0, mask=mask)
    if layout == "fortran":
        args = np.asfortranarray(x), np.asfortranarray(h0), np.asfortranarray(mask)
    elif layout == "transposed":
        args = (np.ascontiguousarray(x.transpose(2, 1, 0)).transpose(2, 1, 0),
                np.ascontiguousarray(h0.T).T, np.ascontiguousarray(mask.T).T)
    elif layout == "strided":
        big = np.zeros((6, 10, 4))
        big[::2, ::2, ::2] = x
        args = big[::2, ::2, ::2], np.repeat(h0, 2, axis=1)[:, ::2], np.repeat(mask, 2, axis=0)[::2]
    elif layout == "broadcast":
        x = np.broadcast_to(x[:1], x.shape)
        want = layer(x, initial_state=h0, mask=mask)
        args = x, h0, mask
    else:
        args = x.copy(), h0.copy(), mask.copy()
        for a in args:
            a.flags.writeable = False
    got = layer(args[0], initial_state=args[1], mask=args[2])
    np.testing.assert_array_equal(got, want)


def test_contiguous_arrays_are_not_copied_and_inputs_never_modified(rng):
    x = rng.standard_normal((2, 4, 2)).astype(np.float32)
    assert _validate.inputs(x, np.dtype(np.float32), 2) is x
    h0 = rng.standard_normal((2, 3)).astype(np.float32)
    assert _validate.state(h0, 2, 3, np.dtype(np.float32)) is h0
    mask = np.ones((2, 4), bool)
    assert _validate.mask(mask, 2, 4) is mask
    copies = x.copy(), h0.copy(), mask.copy()
    built(return_sequences=True)(x, initial_state=h0, mask=mask)
    for original, copy in zip((x, h0, mask), copies):
        np.testing.assert_array_equal(original, copy)


def test_nan_weights_are_allowed_and_propagate():
    layer = built()
    layer.set_weights([np.full((2, 3), np.nan), np.zeros((3, 3)), np.zeros(3)])
    assert np.isnan(layer(X)).all()


# ---------------------------------------------------------------- the kernel's own contract check
def _kernel_args(batch=2, steps=4, features=3, units=5, dtype=np.float64):
    return dict(x=np.zeros((batch, steps, features), dtype), kernel=np.zeros((features, units), dtype),
                recurrent_kernel=np.zeros((units, units), dtype), bias=np.zeros(units, dtype),
                initial_state=np.zeros((batch, units), dtype), mask=np.ones((batch, steps), bool),
                input_dropout=np.ones((batch, features), dtype),
                recurrent_dropout=np.ones((batch, units), dtype))


@pytest.mark.parametrize("name,value,match", [
    ("x", np.zeros((2, 4)), "3-D"),
    ("x", np.zeros((2, 4, 3), np.float32), "kernel must be a C-contiguous float32.*received float64"),
    ("x", np.zeros((2, 4, 3), np.int64), "C-contiguous"),
    ("x", np.zeros((3, 4, 2)).transpose(2, 1, 0), "C-contiguous=False"),
    ("kernel", np.zeros((4, 5)), r"kernel.*\(3, 5\).*\(4, 5\)"),
    ("recurrent_kernel", np.zeros((5, 4)), r"\(5, 5\).*\(5, 4\)"),
    ("recurrent_kernel", np.zeros((4, 4)), r"\(5, 5\)"),
    ("recurrent_kernel", [[0.0] * 5] * 5, "ndarray.*list"),
    ("bias", np.zeros(4), r"bias.*\(5,\).*\(4,\)"),
    ("initial_state", np.zeros((1, 5)), r"initial_state.*\(2, 5\).*\(1, 5\)"),
    ("initial_state", None, "initial_state.*NoneType"),
    ("mask", np.ones((2, 3), bool), r"mask.*\(2, 4\)"),
    ("mask", np.ones((2, 4)), "mask must be a C-contiguous bool"),
    ("input_dropout", np.ones((2, 2)), r"input_dropout.*\(2, 3\)"),
    ("recurrent_dropout", np.ones((2, 4)), r"recurrent_dropout.*\(2, 5\)"),
    ("recurrent_dropout", np.ones((2, 10))[:, ::2], "C-contiguous=False"),
])
def test_cpu_kernel_rejects_arrays_it_could_read_out_of_bounds(name, value, match):
    args = _kernel_args()
    args[name] = value
    x = args.pop("x")
    with pytest.raises(ValueError, match=match):
        cpu.forward(x, args.pop("kernel"), args.pop("recurrent_kernel"), args.pop("bias"),
                    args.pop("initial_state"), **args)


def test_layer_and_functional_validate_once(monkeypatch):
    """The layer and the functional API validate their arguments themselves and then call the
    kernel's unchecked entry (``forward_validated``); direct kernel calls keep the check."""
    def fail(*args):
        raise AssertionError("validated twice")

    monkeypatch.setattr(_validate, "kernel_arguments", fail)
    x = np.ones((2, 4, 3), np.float32)
    layer = SimpleRNN(5)
    assert layer(x).shape == (2, 5) and layer(x, training=True).shape == (2, 5)
    kernel, recurrent_kernel = np.ones((3, 5), np.float32), np.eye(5, dtype=np.float32)
    assert forward(x, kernel, recurrent_kernel, device="cpu")[0].shape == (2, 5)
    args = _kernel_args(dtype=np.float32)
    with pytest.raises(AssertionError, match="validated twice"):
        cpu.forward(args["x"], args["kernel"], args["recurrent_kernel"], args["bias"], args["initial_state"])


# ---------------------------------------------------------------- streaming
@pytest.mark.parametrize("state,error,match", [
    (np.zeros((1, 4), np.float32), ValueError, r"state must have shape \(2, 4\); received shape \(1, 4\)"),
    (np.zeros((2, 3), np.float32), ValueError, r"\(2, 4\).*\(2, 3\)"),
    ("x", TypeError, "state must hold real numbers"),
    (None, TypeError, "state must hold real numbers"),
])
def test_stream_rejects_a_bad_assigned_state(state, error, match):
    """Stream.state is a public attribute; step() checks it before the kernel reads (batch, units)."""
    from simplernn_numba import Stream

    stream = Stream(built(units=4, features=3), batch_size=2)
    stream.state = state
    with pytest.raises(error, match=match):
        stream.step(np.ones((2, 3), np.float32))


def test_stream_casts_an_assigned_state_of_another_dtype():
    from simplernn_numba import Stream

    stream = Stream(built(units=4, features=3), batch_size=2)
    stream.state = np.zeros((2, 4), np.float64)
    assert stream.step(np.ones((2, 3))).dtype == np.float32
