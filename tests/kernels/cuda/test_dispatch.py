"""Device selection, device-array validation and the Layer on CUDA.

The tests that take the ``kernels`` fixture need the simulator or a GPU; the
others run everywhere (they monkeypatch GPU availability where it matters).
"""

import cuda_cases
import numpy as np
import pytest
from cuda_cases import assert_close, host

from simplernn_numba import SimpleRNN, _validate, activations, dispatch
from simplernn_numba.kernels import config, cpu, reference
from simplernn_numba.kernels.device_arrays import is_device_array

kernels = cuda_cases.kernels


class FakeGpuArray:
    """Exposes ``__cuda_array_interface__`` (enough for device detection; never dereferenced)."""

    __cuda_array_interface__ = {"shape": (1,), "typestr": "<f4", "data": (0, False), "version": 3}


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(dispatch, "cuda_available", lambda: False)
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)


@pytest.fixture
def fake_gpu(monkeypatch):
    monkeypatch.setattr(dispatch, "cuda_available", lambda: True)
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)


BIG = np.zeros((128, 100, 512), np.float32)  # 2·B·T·U·(F+U) = 1.3e10 FLOPs at U=512, 1.3e8 a step
MANY_SMALL_STEPS = np.zeros((64, 100, 128), np.float32)  # 4.2e8 FLOPs at U=128, but 4.2e6 a step
SMALL = np.zeros((2, 3, 4))
TANH = activations.get("tanh")


def test_forward_flops():
    assert dispatch.forward_flops((64, 100, 128), 128) == 2 * 64 * 100 * 128 * 256


def test_auto_picks_cpu_for_small_inputs_even_with_gpu(fake_gpu):
    assert dispatch.backend("auto", TANH, SMALL, 4) is cpu.BACKEND
    assert dispatch.forward_flops(SMALL.shape, 4) < config.CUDA_MIN_FLOPS


def test_auto_picks_cuda_for_large_inputs_when_gpu(fake_gpu):
    assert dispatch.backend("auto", TANH, BIG, 512).name == "cuda"


def test_auto_picks_cpu_for_many_small_steps_even_with_gpu(fake_gpu):
    assert dispatch.forward_flops(MANY_SMALL_STEPS.shape, 128) > config.CUDA_MIN_FLOPS
    assert dispatch.backend("auto", TANH, MANY_SMALL_STEPS, 128) is cpu.BACKEND


def test_auto_picks_cpu_for_large_inputs_without_gpu(no_gpu):
    assert dispatch.backend("auto", TANH, BIG, 512) is cpu.BACKEND


def test_forcing_cuda_without_gpu_is_a_runtime_error(no_gpu):
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        dispatch.backend("cuda", TANH, SMALL, 4)


def test_gpu_inputs_without_gpu_are_a_runtime_error(no_gpu):
    with pytest.raises(RuntimeError, match="no CUDA GPU"):
        dispatch.backend("auto", TANH, FakeGpuArray(), 4)


def test_environment_variable_overrides_device(monkeypatch, fake_gpu):
    monkeypatch.setenv(dispatch.ENV_VAR, "cpu")
    assert dispatch.backend("cuda", TANH, BIG, 512) is cpu.BACKEND
    monkeypatch.setenv(dispatch.ENV_VAR, "cuda")
    assert dispatch.backend("cpu", TANH, SMALL, 4).name == "cuda"
    monkeypatch.setenv(dispatch.ENV_VAR, "gpu")
    with pytest.raises(ValueError, match="SIMPLERNN_NUMBA_DEVICE"):
        dispatch.backend("auto", TANH, SMALL, 4)


def test_callable_activation_uses_reference_under_auto(fake_gpu):
    assert dispatch.backend("auto", lambda z: z, BIG, 512) is reference.BACKEND


def test_callable_activation_cannot_run_on_cuda(fake_gpu):
    with pytest.raises(TypeError, match="Python callable"):
        dispatch.backend("cuda", lambda z: z, SMALL, 4)
    with pytest.raises(TypeError, match="Python callable"):
        dispatch.backend("auto", lambda z: z, FakeGpuArray(), 4)


def test_gpu_inputs_with_device_cpu_are_an_error(fake_gpu):
    with pytest.raises(ValueError, match="nothing is copied"):
        dispatch.backend("cpu", TANH, FakeGpuArray(), 4)


def test_device_array_detection():
    assert _validate.is_device_array(FakeGpuArray())
    assert not _validate.is_device_array(np.zeros(3))
    assert not _validate.is_device_array([1.0])


def test_mixing_host_and_gpu_arrays_is_an_error():
    with pytest.raises(ValueError, match="inputs on the GPU but mask in host memory"):
        _validate.same_memory(inputs=FakeGpuArray(), mask=np.ones((1, 1), bool), initial_state=None)
    with pytest.raises(ValueError, match="initial_state on the GPU"):
        _validate.same_memory(inputs=np.zeros(1), initial_state=[FakeGpuArray()])
    _validate.same_memory(inputs=np.zeros(1), mask=None, initial_state=[np.zeros(1)])


def test_every_backend_implements_the_contract():
    """``dispatch.backend`` returns objects of the typed contract (``kernels.backend.Backend``)."""
    from simplernn_numba.kernels import cuda
    from simplernn_numba.kernels.backend import Backend

    for backend, name in ((reference.BACKEND, "reference"), (cpu.BACKEND, "cpu"), (cuda.BACKEND, "cuda")):
        assert isinstance(backend, Backend) and backend.name == name
    assert reference.BACKEND.last_plan() is None
    assert dispatch.call_info(reference.BACKEND) == dispatch.CallInfo("reference", None)


def test_host_weights_pass_through_for_cpu():
    arrays = (np.zeros(1),)
    assert cpu.BACKEND.prepare_weights(object, 0, arrays) is arrays


# ---------------------------------------------------------------- with the simulator or a GPU
def _layer(device, **kw):
    layer = SimpleRNN(5, device=device, seed=1, **kw)
    layer.build((None, 4, 3))
    return layer


def test_layer_on_cuda_matches_cpu(kernels, rng):
    x = rng.normal(size=(3, 4, 3)).astype(np.float32)
    mask = rng.random((3, 4)) > 0.3
    for kw in ({}, {"return_sequences": True, "go_backwards": True, "activation": "relu"},
               {"dropout": 0.3, "recurrent_dropout": 0.4}):
        gpu, ref = _layer("cuda", **kw), _layer("cpu", **kw)
        ref.set_weights(gpu.get_weights())
        out = gpu(x, mask=mask, training=True)
        assert type(out) is np.ndarray
        assert_close([out], [ref(x, mask=mask, training=True)], np.float32)
        # the fixture turns the rows, persistent and register-resident plans off
        assert gpu.last_call.device == "cuda" and gpu.last_call.plan.path == "per_step"


def test_last_call_names_the_gpu_plan(kernels, rng):
    config.set(CUDA_ROWS=True, CUDA_ROWS_MAX_THREADS=64)
    layer = _layer("cuda")
    layer(rng.normal(size=(3, 4, 3)).astype(np.float32))
    assert layer.last_call.device == "cuda"
    assert layer.last_call.plan.path == "rows" and layer.last_call.plan.launch.rows >= 1


def test_layer_device_inputs_stay_on_device(kernels, rng):
    from numba import cuda

    x = rng.normal(size=(3, 4, 3)).astype(np.float32)
    h0 = rng.normal(size=(3, 5)).astype(np.float32)
    layer = _layer("auto", return_state=True)
    out, state = layer(cuda.to_device(x), initial_state=cuda.to_device(h0),
                       mask=cuda.to_device(np.ones((3, 4), bool)))
    assert is_device_array(out) and is_device_array(state)
    ref = _layer("cpu", return_state=True)
    ref.set_weights(layer.get_weights())
    ref_out, ref_state = ref(x, initial_state=h0)
    assert_close([out, state], [ref_out, ref_state], np.float32)


def test_weights_cached_on_device_and_refreshed(kernels, rng):
    x = rng.normal(size=(2, 4, 3)).astype(np.float32)
    from simplernn_numba.kernels.cuda import launch

    layer = _layer("cuda")
    first = layer(x)
    cached = launch._DEVICE_WEIGHTS[layer]
    layer(x)
    assert launch._DEVICE_WEIGHTS[layer] is cached
    layer.set_weights([w * 2 for w in layer.get_weights()])
    second = layer(x)
    assert launch._DEVICE_WEIGHTS[layer] is not cached
    ref = _layer("cpu")
    ref.set_weights(layer.get_weights())
    assert_close([second], [ref(x)], np.float32)
    assert not np.allclose(first, second)


@pytest.mark.parametrize("bad,error,match", [
    (np.zeros((2, 4, 3), np.float64), TypeError, "never cast"),
    (np.zeros((2, 4, 2), np.float32), ValueError, "3 features"),
    (np.zeros((2, 4), np.float32), ValueError, "3-D"),
])
def test_bad_device_inputs(kernels, bad, error, match):
    from numba import cuda

    with pytest.raises(error, match=match):
        _layer("cuda")(cuda.to_device(bad))


def test_bad_device_mask_and_state(kernels):
    from numba import cuda

    x = cuda.to_device(np.zeros((2, 4, 3), np.float32))
    with pytest.raises(TypeError, match="mask on the GPU must have dtype bool"):
        _layer("cuda")(x, mask=cuda.to_device(np.ones((2, 4), np.int32)))
    with pytest.raises(ValueError, match="mask must have shape"):
        _layer("cuda")(x, mask=cuda.to_device(np.ones((2, 3), bool)))
    with pytest.raises(ValueError, match="initial_state must have shape"):
        _layer("cuda")(x, initial_state=cuda.to_device(np.zeros((2, 4), np.float32)))
    with pytest.raises(ValueError, match="same device"):
        _layer("cuda")(x, mask=np.ones((2, 4), bool))


def test_non_contiguous_device_input(kernels):
    from numba import cuda

    x = cuda.to_device(np.zeros((2, 4, 6), np.float32))[:, :, ::2]
    with pytest.raises(ValueError, match="C-contiguous"):
        _layer("cuda")(x)


def test_callable_activation_forced_on_cuda(kernels):
    with pytest.raises(TypeError, match="Python callable"):
        SimpleRNN(2, activation=lambda z: z, device="cuda")(np.zeros((1, 2, 3), np.float32))


def test_host_results_are_numpy(kernels, rng):
    out = _layer("cuda", return_sequences=True)(rng.normal(size=(2, 4, 3)))
    assert type(host(out)) is np.ndarray and type(out) is np.ndarray
