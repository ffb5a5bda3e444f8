"""The forward-pass implementations the benchmark compares: ours and its peers.

Each builder takes a :class:`~simplernn_numba.bench.cases.Problem` and its
:class:`~simplernn_numba.bench.cases.Case` and returns a callable that runs one forward
pass and returns (B, T, U) as NumPy. It raises ImportError when the peer is not
installed (``pip install -e ".[bench]"`` installs them all) and NotImplementedError when
the peer cannot express the case.

- ours: the public layer call ``layer(x)`` (validation and dispatch included);
- numpy: a NumPy loop; torch: ``torch.nn.RNN`` under ``inference_mode``;
- keras_tf_function / keras_eager: tf_keras ``SimpleRNN`` under ``tf.function`` / eagerly;
- onnxruntime: our layer exported by :func:`simplernn_numba.interop.onnx.to_onnx` (the ONNX
  ``RNN`` operator); jax: ``jax.jit`` of a ``lax.scan`` loop;
- openvino: the same ONNX graph compiled by OpenVINO's CPU plugin (oneDNN's RNN underneath),
  reshaped to the case's static input shape, float32, latency hint.

>>> from simplernn_numba.bench.cases import Case, case_problem
>>> case = Case(2, 3, 4, 5)
>>> BUILDERS["numpy"](case_problem(case), case)().shape
(2, 3, 5)
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from .cases import Case, Problem

OURS = "simplernn_numba"
PEERS = ("numpy", "torch", "keras_tf_function", "keras_eager", "onnxruntime", "jax", "openvino")
#: Set by ``--threads N`` (the CLI re-executes itself so that BLAS and XLA see it at import).
THREADS_ENV = "SIMPLERNN_BENCH_THREADS"


def _ours(p: Problem, case: Case) -> Callable[[], np.ndarray]:
    from ..layer import SimpleRNN

    layer = SimpleRNN(case.units, return_sequences=True, dtype=case.dtype)
    layer.build(p.x.shape)
    layer.set_weights([p.kernel, p.recurrent_kernel, p.bias])
    x, mask = p.x, p.mask
    if mask is None:
        return lambda: layer(x)
    return lambda: layer(x, mask=mask)


def _numpy(p: Problem, case: Case) -> Callable[[], np.ndarray]:
    def run():
        xw = p.x @ p.kernel + p.bias
        h = np.zeros((case.batch, case.units), p.x.dtype)
        out = np.empty(xw.shape, p.x.dtype)
        for t in range(case.steps):
            h_new = np.tanh(xw[:, t] + h @ p.recurrent_kernel)
            if p.mask is not None:
                keep = p.mask[:, t, None]
                h_new = np.where(keep, h_new, h)
                out[:, t] = np.where(keep, h_new, out[:, t - 1] if t else 0)
            else:
                out[:, t] = h_new
            h = h_new
        return out
    return run


def torch_rnn(p: Problem, case: Case):
    """A ``torch.nn.RNN`` (batch_first) holding the problem's weights (the torch peer)."""
    import torch

    if p.mask is not None:
        raise NotImplementedError("torch.nn.RNN has no per-step mask")
    if THREADS_ENV in os.environ:
        torch.set_num_threads(int(os.environ[THREADS_ENV]))
    dt = torch.float32 if case.dtype == "float32" else torch.float64
    rnn = torch.nn.RNN(case.features, case.units, batch_first=True).to(dt)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(p.kernel.T.copy()))
        rnn.weight_hh_l0.copy_(torch.from_numpy(p.recurrent_kernel.T.copy()))
        rnn.bias_ih_l0.copy_(torch.from_numpy(p.bias))
        rnn.bias_hh_l0.zero_()
    return rnn


def _torch(p: Problem, case: Case) -> Callable[[], np.ndarray]:
    import torch

    rnn = torch_rnn(p, case)
    x = torch.from_numpy(p.x)

    def run():
        with torch.inference_mode():
            return rnn(x)[0].numpy()
    return run


def _keras_layer(p: Problem, case: Case):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    import tf_keras

    if THREADS_ENV in os.environ and not tf.config.threading.get_intra_op_parallelism_threads():
        tf.config.threading.set_intra_op_parallelism_threads(int(os.environ[THREADS_ENV]))
        tf.config.threading.set_inter_op_parallelism_threads(1)

    layer = tf_keras.layers.SimpleRNN(case.units, return_sequences=True, dtype=case.dtype)
    layer.build(p.x.shape)
    layer.set_weights([p.kernel, p.recurrent_kernel, p.bias])
    x = tf.constant(p.x)
    mask = None if p.mask is None else tf.constant(p.mask)
    return tf, layer, x, mask


def _keras_tf_function(p: Problem, case: Case) -> Callable[[], np.ndarray]:
    tf, layer, x, mask = _keras_layer(p, case)
    fn = tf.function(lambda x, mask: layer(x, mask=mask))
    return lambda: fn(x, mask).numpy()


#: Eager Keras runs the recurrence op by op from Python; above this many FLOPs a call takes
#: many seconds, so it is left out of the timings.
EAGER_MAX_FLOPS = 1e9


def _keras_eager(p: Problem, case: Case) -> Callable[[], np.ndarray]:
    if case.flops > EAGER_MAX_FLOPS:
        raise NotImplementedError(f"eager Keras is not timed above {EAGER_MAX_FLOPS:.0e} FLOPs")
    _, layer, x, mask = _keras_layer(p, case)
    return lambda: layer(x, mask=mask).numpy()


def _onnx_bytes(p: Problem, case: Case, runtime: str) -> bytes:
    """Our layer with the problem's weights as an ONNX graph (the ``RNN`` operator), for the
    float32 unmasked cases the ONNX runtimes can run."""
    from ..interop.onnx import to_onnx
    from ..layer import SimpleRNN

    if p.mask is not None:
        raise NotImplementedError("the ONNX RNN operator has no per-step mask")
    if case.dtype != "float32":
        raise NotImplementedError(f"{runtime}'s CPU RNN kernel is float32 only")
    layer = SimpleRNN(case.units, return_sequences=True, dtype=case.dtype)
    layer.build(p.x.shape)
    layer.set_weights([p.kernel, p.recurrent_kernel, p.bias])
    return to_onnx(layer).SerializeToString()


def _onnxruntime(p: Problem, case: Case) -> Callable[[], np.ndarray]:
    import onnxruntime as ort

    graph = _onnx_bytes(p, case, "ONNX Runtime")
    options = ort.SessionOptions()
    if THREADS_ENV in os.environ:
        options.intra_op_num_threads = int(os.environ[THREADS_ENV])
        options.inter_op_num_threads = 1
    runner = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    feeds = {"inputs": p.x}
    return lambda: runner.run(None, feeds)[0]


def _openvino(p: Problem, case: Case) -> Callable[[], np.ndarray]:
    import openvino as ov

    graph = _onnx_bytes(p, case, "OpenVINO")
    core = ov.Core()
    model = core.read_model(graph)
    model.reshape({"inputs": list(p.x.shape)})
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    if THREADS_ENV in os.environ:
        config["INFERENCE_NUM_THREADS"] = int(os.environ[THREADS_ENV])
    request = core.compile_model(model, "CPU", config).create_infer_request()
    x = p.x

    def run():
        request.infer({"inputs": x})
        return request.get_output_tensor(0).data.copy()
    return run


def jax_rnn(x, kernel, recurrent_kernel, bias, mask):
    """The masked tanh RNN as one einsum plus ``lax.scan`` (the JAX peer, not jitted)."""
    import jax
    import jax.numpy as jnp

    xw = jnp.einsum("btf,fu->tbu", x, kernel) + bias
    h0 = jnp.zeros((x.shape[0], kernel.shape[1]), x.dtype)

    def step(carry, inputs):
        h, prev = carry
        xw_t, m = inputs
        h_new = jnp.tanh(xw_t + h @ recurrent_kernel)
        keep = m[:, None]
        h = jnp.where(keep, h_new, h)
        out = jnp.where(keep, h_new, prev)
        return (h, out), out

    _, ys = jax.lax.scan(step, (h0, h0), (xw, mask.T))
    return jnp.swapaxes(ys, 0, 1)


def _jax(p: Problem, case: Case) -> Callable[[], np.ndarray]:
    import jax

    if case.dtype == "float64":
        jax.config.update("jax_enable_x64", True)

    fwd = jax.jit(jax_rnn)

    mask = np.ones(p.x.shape[:2], bool) if p.mask is None else p.mask
    args = [jax.device_put(a) for a in (p.x, p.kernel, p.recurrent_kernel, p.bias, mask)]
    return lambda: np.asarray(fwd(*args))


BUILDERS: dict[str, Callable[[Problem, Case], Callable[[], np.ndarray]]] = {
    OURS: _ours, "numpy": _numpy, "torch": _torch, "keras_tf_function": _keras_tf_function,
    "keras_eager": _keras_eager, "onnxruntime": _onnxruntime, "jax": _jax, "openvino": _openvino,
}
