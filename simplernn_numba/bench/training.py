"""Training-step builders for ``python -m simplernn_numba.bench --train``: forward + backward.

Each builder returns a callable that runs one training step on the problem's
weights and inputs, with a fixed upstream gradient ``d_output`` (B, T, U), and
returns the gradients ``(inputs, kernel, recurrent_kernel, bias)`` as NumPy
arrays in Keras layout, so that :func:`simplernn_numba.bench.timing.run` checks every
peer's gradients against ours (:func:`tolerance`).

- ours: the public layer API, ``layer(x, training=True)`` then ``layer.backward(d_output)``
  (validation, dispatch and the cached forward outputs included);
- numpy: the NumPy oracle, ``kernels.reference.forward`` + ``kernels.reference.backward``;
- torch: ``torch.nn.RNN(batch_first=True)`` forward + ``.backward(d_output)`` (autograd,
  gradients for the input and every weight);
- jax: ``jax.jit(jax.vjp(...))`` of the ``lax.scan`` RNN of the forward benchmark.

>>> from simplernn_numba.bench.cases import Case
>>> from simplernn_numba.bench.timing import run
>>> rows = run([Case(2, 3, 4, 5)], peers=("numpy",), rounds=1, progress=False,
...            builders=TRAIN_BUILDERS, tolerance=tolerance)
>>> sorted(rows[0].timings)
['numpy', 'simplernn_numba']
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import cases
from .cases import Case, Problem
from .peers import OURS, jax_rnn, torch_rnn

#: Implementations with a training step, in table order after ours.
PEERS = ("numpy", "torch", "jax")
#: Forward + backward is about three forward passes of multiply-adds (forward, d_h and d_U/d_W).
FLOPS_FACTOR = 3

Grads = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def d_output(problem: Problem, case: Case) -> np.ndarray:
    """The fixed upstream gradient (B, T, U) every implementation backpropagates."""
    rng = np.random.default_rng(1)
    return rng.normal(size=(case.batch, case.steps, case.units)).astype(case.dtype)


def tolerance(case: Case) -> dict:
    """``rtol``/``atol`` of the gradient check: ``cases.tolerance(dtype, "gradient")``."""
    rtol, atol = cases.tolerance(case.dtype, "gradient")
    return dict(rtol=rtol, atol=atol)


def _ours(p: Problem, case: Case) -> Callable[[], Grads]:
    from ..layer import SimpleRNN

    layer = SimpleRNN(case.units, return_sequences=True, dtype=case.dtype)
    layer.build(p.x.shape)
    layer.set_weights([p.kernel, p.recurrent_kernel, p.bias])
    x, mask, dy = p.x, p.mask, d_output(p, case)

    def run():
        layer(x, mask=mask, training=True)
        g = layer.backward(dy)
        return g["inputs"], g["kernel"], g["recurrent_kernel"], g["bias"]
    return run


def _numpy(p: Problem, case: Case) -> Callable[[], Grads]:
    from ..kernels import reference

    h0 = np.zeros((case.batch, case.units), case.dtype)
    dy = d_output(p, case)

    def run():
        outputs, _ = reference.forward(p.x, p.kernel, p.recurrent_kernel, p.bias, h0, mask=p.mask,
                                       return_sequences=True)
        g = reference.backward(p.x, p.kernel, p.recurrent_kernel, p.bias, h0, outputs, dy, mask=p.mask)
        return g["inputs"], g["kernel"], g["recurrent_kernel"], g["bias"]
    return run


def _torch(p: Problem, case: Case) -> Callable[[], Grads]:
    import torch

    rnn = torch_rnn(p, case)
    x = torch.from_numpy(p.x.copy()).requires_grad_(True)
    dy = torch.from_numpy(d_output(p, case))
    params = (x, *rnn.parameters())

    def run():
        for t in params:
            t.grad = None
        rnn(x)[0].backward(dy)
        return (x.grad.numpy(), rnn.weight_ih_l0.grad.numpy().T, rnn.weight_hh_l0.grad.numpy().T,
                rnn.bias_ih_l0.grad.numpy())
    return run


def _jax(p: Problem, case: Case) -> Callable[[], Grads]:
    import jax

    if case.dtype == "float64":
        jax.config.update("jax_enable_x64", True)

    @jax.jit
    def grads(x, kernel, recurrent_kernel, bias, mask, dy):
        _, vjp = jax.vjp(lambda *w: jax_rnn(*w, mask), x, kernel, recurrent_kernel, bias)
        return vjp(dy)

    mask = np.ones(p.x.shape[:2], bool) if p.mask is None else p.mask
    args = [jax.device_put(a) for a in (p.x, p.kernel, p.recurrent_kernel, p.bias, mask,
                                        d_output(p, case))]
    return lambda: tuple(np.asarray(g) for g in grads(*args))


TRAIN_BUILDERS: dict[str, Callable[[Problem, Case], Callable[[], Grads]]] = {
    OURS: _ours, "numpy": _numpy, "torch": _torch, "jax": _jax,
}
