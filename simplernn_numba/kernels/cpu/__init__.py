"""Numba CPU kernels for SimpleRNN (the contract of :mod:`simplernn_numba.kernels`).

A call picks one named plan in Python (:mod:`.plan`) and runs that plan's entry kernels, which
compile only the code the plan runs: the activation and the tile shape are chosen when a kernel
compiles (:mod:`.specialise`), absent arrays are ``None``. The paths:

- :mod:`.lanes`: few units, the batch rows as vector lanes;
- :mod:`.rows`: runs of batch rows through every step, each step a register-tiled product
  (:mod:`.products`) with the weights in cache; one or two batch rows on kernels of their own;
- :mod:`.panels`: large recurrent kernels, or many units, without a mask or recurrent dropout:
  weights packed into column panels, runs of quads of rows over the threads, no BLAS;
- :mod:`.gemm`: large recurrent kernels with a mask or recurrent dropout: one BLAS GEMM a step.

The input projection ``x @ kernel`` is one large product per run of rows (or fused into each
step's product while the weights fit in L2); the backward pass's weight and input gradients are
products over all steps after the recurrence. Runs of rows go through every step without
per-step synchronisation; the thresholds are :mod:`..config` settings.

On one path a row's result does not depend on the other rows (each element of a tiled product
is one FMA per term, in order), so the result does not depend on the thread count; the path and
the tile depend on the batch size, so two batch sizes can differ by rounding. ``tanh`` is
vectorised (:mod:`.tanh`): a rational approximation for float32 (max abs error about 1e-7) and
an ``expm1``-based evaluation for float64 (within 3 ulp of libm).
"""

from ..backend import KernelBackend
from . import notice  # noqa: F401 - registers the compile notice (a Numba event listener)
from .backward_pass import backward
from .forward_pass import forward, forward_for_training, forward_validated, input_projection
from .last_call import last_plan
from .weights import prepared_weights
from .workspace import release as release_workspace

#: The CPU backend (:class:`..backend.Backend`): the validated entries (the layer and the functional
#: API validate every array first); the CPU kernels read the host weights as they are.
BACKEND = KernelBackend("cpu", forward_validated, forward_for_training, backward, last_plan=last_plan)

__all__ = ["BACKEND", "backward", "forward", "forward_for_training", "forward_validated", "input_projection",
           "last_plan", "prepared_weights", "release_workspace"]
