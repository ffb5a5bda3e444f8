"""SimpleRNN layer: the Keras documentation's examples, Keras semantics, errors, config, repr."""

import numpy as np
import pytest

from simplernn_numba import SimpleRNN, constraints, initializers, regularizers


def toy_layer(units=1, **kw):
    """Linear layer with kernel = ones, recurrent = identity, bias = zeros."""
    layer = SimpleRNN(units, activation=None, kernel_initializer="ones",
                      recurrent_initializer="identity", **kw)
    return layer


# ---------------------------------------------------------------- seed examples
def test_seed_example_shapes():
    inputs = np.random.random([32, 10, 8]).astype(np.float32)
    output = SimpleRNN(4)(inputs)
    assert output.shape == (32, 4) and output.dtype == np.float32
    seq, state = SimpleRNN(4, return_sequences=True, return_state=True)(inputs)
    assert seq.shape == (32, 10, 4) and state.shape == (32, 4)
    np.testing.assert_array_equal(seq[:, -1], state)


WORKED_X = np.arange(1, 17, dtype=np.float32).reshape(2, 4, 2) / 10
WORKED_MASK = np.array([[1, 1, 0, 1], [0, 1, 1, 0]], bool)


@pytest.mark.parametrize("go_backwards,mask,expected", [
    (False, WORKED_MASK, [[0.3, 1.0, 1.0, 2.5], [0.0, 2.3, 5.0, 5.0]]),
    (True, WORKED_MASK, [[1.5, 1.5, 2.2, 2.5], [0.0, 2.7, 5.0, 5.0]]),
    (True, None, [[1.5, 2.6, 3.3, 3.6], [3.1, 5.8, 8.1, 10.0]]),
])
def test_worked_example_from_keras_semantics(go_backwards, mask, expected):
    layer = toy_layer(2, return_sequences=True, return_state=True, go_backwards=go_backwards)
    seq, state = layer(WORKED_X, mask=mask)
    expected = np.array(expected, np.float32)
    np.testing.assert_allclose(seq, np.repeat(expected[..., None], 2, -1), atol=1e-6)
    np.testing.assert_allclose(state[:, 0], expected[:, -1], atol=1e-6)


def test_masked_leading_steps_output_zero_even_with_initial_state():
    x = np.ones((1, 3, 1), np.float32)
    seq, state = toy_layer(return_sequences=True, return_state=True)(
        x, mask=[[0, 1, 0]], initial_state=np.full((1, 1), 5.0))
    np.testing.assert_allclose(seq.ravel(), [0, 6, 6])
    np.testing.assert_allclose(state.ravel(), [6])
    seq, state = toy_layer(return_sequences=True, return_state=True, go_backwards=True)(
        x, mask=[[1, 1, 0]], initial_state=[np.full((1, 1), 5.0)])
    np.testing.assert_allclose(seq.ravel(), [0, 6, 7])
    np.testing.assert_allclose(state.ravel(), [7])


def test_fully_masked_row_last_output_zero_state_initial():
    x = np.ones((2, 3, 1), np.float32)
    out, state = toy_layer(return_state=True)(
        x, mask=[[0, 0, 0], [1, 0, 0]], initial_state=np.full((2, 1), 5.0))
    np.testing.assert_allclose(out.ravel(), [0, 6])
    np.testing.assert_allclose(state.ravel(), [5, 6])


@pytest.mark.parametrize("units,go_backwards,row0,row1", [
    (4, False, 0.405432, 0.73605347), (4, True, 0.11144729, 0.5528889),
    (3, False, 0.401133, 0.72989243), (3, True, 0.10560678, 0.5433588),
])
def test_keras_golden_correctness(units, go_backwards, row0, row1):
    layer = SimpleRNN(units, kernel_initializer=initializers.Constant(0.01),
                      recurrent_initializer=initializers.Constant(0.02),
                      bias_initializer=initializers.Constant(0.03), go_backwards=go_backwards)
    out = layer(np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    np.testing.assert_allclose(out[0], row0, rtol=1e-6)
    np.testing.assert_allclose(out[1], row1, rtol=1e-6)


def test_unroll_computes_the_recurrence_and_round_trips(rng):
    """``unroll=True`` is accepted and kept in the config; the layer computes the same recurrence
    (here written step by step) as without it."""
    x = rng.normal(size=(3, 5, 2))
    layer = SimpleRNN(4, unroll=True, return_sequences=True, dtype="float64")
    seq = layer(x)
    kernel, recurrent_kernel, bias = layer.get_weights()
    h = np.zeros((3, 4))
    for t in range(5):
        h = np.tanh(x[:, t] @ kernel + h @ recurrent_kernel + bias)
        np.testing.assert_allclose(seq[:, t], h, rtol=1e-12, atol=1e-15)
    config = layer.get_config()
    assert config["unroll"] is True and SimpleRNN.from_config(config).get_config() == config


def test_callable_activation_uses_reference_path(rng):
    x = rng.normal(size=(2, 4, 3))
    layer = SimpleRNN(5, activation=lambda z: np.tanh(z) * 0.5, dtype="float64")
    named = SimpleRNN(5, activation="tanh", dtype="float64")
    named.build(x.shape)
    layer.build(x.shape)
    layer.set_weights([w * 1 for w in named.get_weights()])
    out = layer(x)
    assert np.abs(out).max() <= 0.5
    assert not np.allclose(out, named(x))


# ---------------------------------------------------------------- dtypes and edge shapes
def test_float64_layer_keeps_float64(rng):
    layer = SimpleRNN(3, dtype="float64", return_state=True)
    out, state = layer(rng.normal(size=(2, 4, 3)).astype(np.float32))
    assert out.dtype == state.dtype == layer.kernel.dtype == np.float64


def test_integer_inputs_are_cast():
    out = SimpleRNN(2)(np.ones((2, 3, 4), np.int64))
    assert out.dtype == np.float32


def test_batch_zero_returns_empty_arrays():
    seq, state = SimpleRNN(3, return_sequences=True, return_state=True)(np.zeros((0, 5, 2)))
    assert seq.shape == (0, 5, 3) and state.shape == (0, 3)


def test_zero_timesteps_is_a_clear_error():
    with pytest.raises(ValueError, match="at least one timestep"):
        SimpleRNN(3)(np.zeros((2, 0, 4)))


# ---------------------------------------------------------------- dropout
def test_dropout_only_when_training(rng):
    x = rng.normal(size=(4, 6, 3)).astype(np.float32)
    layer = SimpleRNN(5, dropout=0.5, recurrent_dropout=0.5, seed=0)
    np.testing.assert_array_equal(layer(x), layer(x, training=False))
    trained = layer(x, training=True)
    assert not np.allclose(trained, layer(x))


def test_dropout_is_seeded(rng):
    x = rng.normal(size=(4, 6, 3)).astype(np.float32)
    a = SimpleRNN(5, dropout=0.5, seed=7, kernel_initializer=initializers.GlorotUniform(0),
                  recurrent_initializer=initializers.Orthogonal(seed=1))
    b = SimpleRNN.from_config(a.get_config())
    np.testing.assert_array_equal(a(x, training=True), b(x, training=True))


def test_dropout_mask_is_variational_and_scaled():
    from simplernn_numba import engine

    drop = engine.dropout_mask(np.random.default_rng(3), 0.25, (200, 50), np.dtype("float64"))
    assert set(np.unique(drop)) <= {0.0, 1 / 0.75}
    assert abs((drop == 0).mean() - 0.25) < 0.02


# ---------------------------------------------------------------- stateful
def test_stateful_carries_state_across_calls(rng):
    x = rng.normal(size=(2, 6, 3)).astype(np.float32)
    full = SimpleRNN(4, return_sequences=True, kernel_initializer=initializers.GlorotUniform(5),
                     recurrent_initializer=initializers.Orthogonal(seed=5))
    stateful = SimpleRNN.from_config({**full.get_config(), "stateful": True})
    expected = full(x)
    first, second = stateful(x[:, :3]), stateful(x[:, 3:])
    np.testing.assert_allclose(np.concatenate([first, second], 1), expected, rtol=1e-6)
    stateful.reset_states()
    np.testing.assert_allclose(stateful(x[:, :3]), expected[:, :3], rtol=1e-6)


def test_stateful_batch_size_mismatch():
    layer = SimpleRNN(2, stateful=True)
    layer(np.zeros((3, 2, 1)))
    with pytest.raises(ValueError, match="batch size 3.*batch size 4"):
        layer(np.zeros((4, 2, 1)))


def test_reset_states_on_non_stateful_layer():
    with pytest.raises(AttributeError, match="Layer must be stateful"):
        SimpleRNN(2).reset_states()


def test_reset_states_before_batch_size_known():
    with pytest.raises(ValueError, match="batch size"):
        SimpleRNN(2, stateful=True).reset_states()


def test_reset_states_with_values_and_errors():
    layer = SimpleRNN(2, stateful=True, batch_input_shape=(3, 4, 1))
    np.testing.assert_array_equal(layer.states[0], np.zeros((3, 2)))
    layer.reset_states(np.ones((3, 2), np.float64))
    assert layer.states[0].dtype == np.float32
    np.testing.assert_array_equal(layer.states[0], 1)
    with pytest.raises(ValueError, match=r"expected shape=\(3, 2\), found shape=\(2, 2\)"):
        layer.reset_states(np.ones((2, 2)))
    with pytest.raises(ValueError, match="expects 1 state.*received 2"):
        layer.reset_states([np.ones((3, 2)), np.ones((3, 2))])


def test_states_is_none_for_non_stateful():
    assert SimpleRNN(2).states == [None]


# ---------------------------------------------------------------- weights
def test_weights_in_keras_order_and_set_weights(rng):
    layer = SimpleRNN(3)
    layer.build((None, 5, 2))
    assert [w.shape for w in layer.get_weights()] == [(2, 3), (3, 3), (3,)]
    new = [rng.normal(size=w.shape) for w in layer.get_weights()]
    layer.set_weights(new)
    for got, want in zip(layer.weights, new):
        np.testing.assert_allclose(got, want.astype(np.float32))
    assert layer.count_params() == 6 + 9 + 3
    no_bias = SimpleRNN(3, use_bias=False)
    no_bias.build((None, 5, 2))
    assert len(no_bias.get_weights()) == 2 and no_bias.bias is None


def test_set_weights_errors():
    layer = SimpleRNN(3)
    with pytest.raises(ValueError, match="not built"):
        layer.set_weights([])
    layer.build((None, 5, 2))
    with pytest.raises(ValueError, match="expects 3 weights"):
        layer.set_weights([np.zeros((2, 3))])
    with pytest.raises(ValueError, match=r"recurrent_kernel must have shape \(3, 3\).*\(3, 2\)"):
        layer.set_weights([np.zeros((2, 3)), np.zeros((3, 2)), np.zeros(3)])


def test_weights_are_read_only_and_private():
    layer = SimpleRNN(2)
    layer.build((None, 1, 2))
    with pytest.raises(ValueError):
        layer.kernel[0, 0] = 1.0
    source = np.zeros((2, 2), np.float32)
    layer.kernel = source
    source[0, 0] = 9
    assert layer.kernel[0, 0] == 0


def test_initializers_are_seedable_and_defaults():
    a = SimpleRNN(4, kernel_initializer=initializers.GlorotUniform(3),
                  recurrent_initializer=initializers.Orthogonal(seed=3))
    b = SimpleRNN.from_config(a.get_config())
    a.build((None, 2, 5))
    b.build((None, 2, 5))
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_allclose(a.recurrent_kernel @ a.recurrent_kernel.T, np.eye(4), atol=1e-5)
    np.testing.assert_array_equal(a.bias, 0)
    limit = np.sqrt(6 / (5 + 4))
    assert np.abs(a.kernel).max() <= limit


# ---------------------------------------------------------------- losses and constraints
def test_losses_weight_and_activity_regularizers(rng):
    x = rng.normal(size=(4, 3, 2)).astype(np.float32)
    layer = SimpleRNN(3, kernel_regularizer="l2", recurrent_regularizer="l1",
                      bias_regularizer=regularizers.l1_l2(0.1, 0.2),
                      bias_initializer="ones", activity_regularizer="l2", return_state=True)
    out, state = layer(x)
    k, r, b = layer.weights
    expected = [0.01 * np.sum(k**2), 0.01 * np.sum(np.abs(r)),
                0.1 * np.sum(np.abs(b)) + 0.2 * np.sum(b**2),
                0.01 * np.sum(out**2) / 4, 0.01 * np.sum(state**2) / 4]
    np.testing.assert_allclose(layer.losses, expected, rtol=1e-5)


def test_apply_constraints():
    layer = SimpleRNN(3, kernel_constraint="non_neg", recurrent_constraint=constraints.MaxNorm(0.5),
                      bias_constraint="unit_norm", bias_initializer="ones")
    layer.build((None, 2, 4))
    layer.apply_constraints()
    assert layer.kernel.min() >= 0
    assert np.linalg.norm(layer.recurrent_kernel, axis=0).max() <= 0.5 + 1e-6
    np.testing.assert_allclose(np.linalg.norm(layer.bias), 1, rtol=1e-6)


# ---------------------------------------------------------------- config and shapes
def test_get_config_keys_and_round_trip():
    layer = SimpleRNN(5, activation="relu", use_bias=False, kernel_regularizer="l1",
                      recurrent_constraint="max_norm", dropout=0.2, recurrent_dropout=0.1,
                      return_sequences=True, return_state=True, go_backwards=True,
                      stateful=True, unroll=True, seed=4, name="rnn", dtype="float64")
    config = layer.get_config()
    keras_keys = {"units", "activation", "use_bias", "kernel_initializer",
                  "recurrent_initializer", "bias_initializer", "kernel_regularizer",
                  "recurrent_regularizer", "bias_regularizer", "activity_regularizer",
                  "kernel_constraint", "recurrent_constraint", "bias_constraint", "dropout",
                  "recurrent_dropout", "return_sequences", "return_state", "go_backwards",
                  "stateful", "unroll", "zero_output_for_mask", "name", "trainable", "dtype"}
    assert keras_keys <= set(config) and set(config) - keras_keys == {"seed"}
    assert SimpleRNN.from_config(config).get_config() == config


def test_compute_output_shape():
    assert SimpleRNN(4).compute_output_shape((None, 7, 3)) == (None, 4)
    assert SimpleRNN(4, return_sequences=True, return_state=True).compute_output_shape(
        (2, 7, 3)) == [(2, 7, 4), (2, 4)]


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs,error,match", [
    ({"units": 0}, ValueError, "units.*positive integer.*got 0"),
    ({"units": 2.5}, ValueError, "units"),
    ({"units": 2, "dropout": 1.0}, ValueError, r"dropout.*\[0, 1\).*got 1.0"),
    ({"units": 2, "recurrent_dropout": -0.1}, ValueError, "recurrent_dropout"),
    ({"units": 2, "activation": "nope"}, ValueError, "Unknown activation 'nope'"),
    ({"units": 2, "kernel_initializer": "nope"}, ValueError, "Unknown initializer 'nope'"),
    ({"units": 2, "kernel_regularizer": "l3"}, ValueError, "Unknown regularizer 'l3'"),
    ({"units": 2, "bias_constraint": "tiny"}, ValueError, "Unknown constraint 'tiny'"),
    ({"units": 2, "dtype": "int32"}, TypeError, "float32 or float64"),
    ({"units": 2, "return_sequences": "yes"}, TypeError, "return_sequences"),
    ({"units": 2, "device": "tpu"}, ValueError, "device"),
])
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        SimpleRNN(**kwargs)


@pytest.mark.parametrize("inputs,kwargs,error,match", [
    (np.zeros((2, 3)), {}, ValueError, r"3-D.*\(batch, timesteps, features\).*\(2, 3\)"),
    (np.zeros((2, 3, 5)), {}, ValueError, r"inputs have 5 features \(shape \(2, 3, 5\)\) but layer "
                                          "'.*' was built for 4 features"),
    (np.zeros((2, 3, 4), complex), {}, TypeError, "complex"),
    (np.array([[["a"]]]), {}, TypeError, "dtype"),
    (np.zeros((2, 3, 4)), {"mask": np.ones((2, 4), bool)}, ValueError, r"mask.*\(2, 3\).*\(2, 4\)"),
    (np.zeros((2, 3, 4)), {"initial_state": np.zeros((2, 3))}, ValueError,
     r"initial_state.*\(2, 2\).*\(2, 3\)"),
    (np.zeros((2, 3, 4)), {"initial_state": [np.zeros((2, 2))] * 2}, ValueError, "1 state"),
])
def test_call_errors(inputs, kwargs, error, match):
    layer = SimpleRNN(2)
    layer.build((None, 3, 4))
    with pytest.raises(error, match=match):
        layer(inputs, **kwargs)


def test_a_call_releases_the_last_calls_arrays_before_running(monkeypatch):
    """The cache of the previous training call is dropped before the new call allocates its own
    arrays (so their memory is reused instead of page-faulted in afresh)."""
    import weakref

    from simplernn_numba import engine

    layer = SimpleRNN(3, return_sequences=True)
    x = np.ones((2, 4, 5), np.float32)
    layer(x, training=True)
    previous = weakref.ref(layer.saved_forward.outputs)
    seen = []
    run = engine.run

    def spy(*args, **kwargs):
        seen.append(previous() is None)
        return run(*args, **kwargs)

    monkeypatch.setattr(engine, "run", spy)
    layer(x, training=True)
    assert seen == [True]
    layer.backward(np.ones((2, 4, 3), np.float32))  # the new call's cache works


# ---------------------------------------------------------------- repr, last_call, training, names
def test_repr_shows_configuration_and_build_state():
    layer = SimpleRNN(3, activation="relu", return_state=True, go_backwards=True, dtype="float64",
                      device="cpu", name="rnn")
    assert repr(layer) == ("SimpleRNN(units=3, activation='relu', dtype='float64', device='cpu', "
                           "return_sequences=False, return_state=True, go_backwards=True, built=False, "
                           "name='rnn')")
    layer.build((None, None, 2))
    assert "built=True" in repr(layer)
    from simplernn_numba import Bidirectional

    wrapper = Bidirectional(SimpleRNN(2, name="r"), merge_mode="sum", name="bi")
    assert repr(wrapper) == (f"Bidirectional({wrapper.forward_layer!r}, merge_mode='sum', name='bi')")
    assert "forward_r" in repr(wrapper)


def test_optimizers_repr():
    from simplernn_numba.optimizers import SGD, Adam

    assert repr(SGD(0.1, momentum=0.5)) == "SGD(learning_rate=0.1, momentum=0.5, nesterov=False)"
    assert repr(Adam()) == "Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07)"


def test_last_call_names_the_kernels_that_ran():
    from simplernn_numba import Bidirectional
    from simplernn_numba.dispatch import CallInfo
    from simplernn_numba.kernels.cpu.plan import Plan

    layer = SimpleRNN(2, device="cpu")
    assert layer.last_call is None
    layer(np.ones((1, 2, 3), np.float32))
    assert layer.last_call.device == "cpu" and layer.last_call.plan.path == "one_row"
    layer(np.ones((32, 2, 3), np.float32))
    assert layer.last_call.plan == Plan("lanes", 1, -1, True)
    layer = SimpleRNN(2, activation=lambda z: np.tanh(z))
    layer(np.ones((1, 2, 3), np.float32))
    assert layer.last_call == CallInfo("reference")
    wrapper = Bidirectional(SimpleRNN(2, device="cpu"))
    wrapper(np.ones((32, 2, 3), np.float32))
    assert wrapper.last_call == (CallInfo("cpu", Plan("lanes", 1, -1, True)),) * 2


@pytest.mark.parametrize("training", [True, False, None, np.True_, np.bool_(False), 1, 0, np.int64(1)])
def test_training_takes_bools_none_and_learning_phase_integers(training):
    layer = SimpleRNN(2, dropout=0.5, seed=0, kernel_initializer="ones", recurrent_initializer="zeros")
    x = np.ones((64, 2, 3), np.float32)
    inference = layer(x, training=False)
    out = layer(x, training=training)
    assert (layer.saved_forward is not None) == bool(training)  # a training call keeps its cache
    assert np.array_equal(out, inference) != bool(training)  # and drops inputs


@pytest.mark.parametrize("training", ["yes", 2, 0.0, [True]])
def test_training_refuses_anything_else(training):
    from simplernn_numba import Bidirectional

    with pytest.raises(TypeError, match="training must be True, False, None, 0 or 1"):
        SimpleRNN(2)(np.ones((1, 2, 3), np.float32), training=training)
    with pytest.raises(TypeError, match="training must be True, False, None, 0 or 1"):
        Bidirectional(SimpleRNN(2))(np.ones((1, 2, 3), np.float32), training=training)


@pytest.mark.parametrize("kwargs, match", [
    ({"activation": "Tanh"}, "Did you mean 'tanh'"),
    ({"activation": "sigmod"}, "Did you mean 'sigmoid'"),
    ({"kernel_initializer": "Glorot_Uniform"}, "Did you mean 'glorot_uniform'"),
    ({"kernel_initializer": "glorot_unifrom"}, "Did you mean 'glorot_uniform'"),
    ({"kernel_regularizer": "L1_L2"}, "Did you mean 'l1_l2'"),
    ({"kernel_constraint": "maxnorm"}, "Did you mean 'max_norm'"),
    ({"kernel_initializer": {"class_name": "GlorotUnifrom"}}, "Did you mean 'GlorotUniform'"),
    ({"device": "CPU"}, "Did you mean 'cpu'"),
    ({"device": "gpu"}, "Did you mean 'cuda'"),
    ({"device": "GPU"}, "Did you mean 'cuda'"),
])
def test_unknown_names_get_a_suggestion(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimpleRNN(2, **kwargs)


def test_unknown_name_far_from_any_gets_no_suggestion():
    with pytest.raises(ValueError) as info:
        SimpleRNN(2, activation="qqqqqq")
    assert "Did you mean" not in str(info.value) and "Expected one of" in str(info.value)
