"""SimpleRNN kernels: one contract, three implementations.

- :mod:`.reference` — plain NumPy, the oracle every other kernel is tested against;
  also the path for user-supplied (Python callable) activations.
- :mod:`.cpu` — Numba ``@njit(parallel=True, cache=True)`` kernels.
- :mod:`.cuda` — Numba CUDA kernels (optional ``cuda`` extra).

Each exports ``BACKEND``, an implementation of :class:`.backend.Backend` (name, forward for
inference and for training, backward, weight preparation, last plan), which
:mod:`simplernn_numba.dispatch` chooses and :mod:`simplernn_numba.engine` calls with arrays
already validated by :mod:`simplernn_numba._validate` (C-contiguous, one float dtype, matching
shapes). Each module also has the functions themselves::

    forward(x, kernel, recurrent_kernel, bias, initial_state, *, mask=None,
            input_dropout=None, recurrent_dropout=None, go_backwards=False,
            activation="tanh", return_sequences=True) -> (outputs, final_state)

(the CPU ``forward`` checks the contract itself, for direct callers; its ``BACKEND.forward``
skips that). ``BACKEND.forward_for_training`` runs when a backward pass follows (the CPU
kernels then keep OpenBLAS out of the forward pass).

``x`` (B, T, F); ``kernel`` (F, U); ``recurrent_kernel`` (U, U); ``bias`` (U,) or
None; ``initial_state`` (B, U); ``mask`` (B, T) bool or None; ``input_dropout``
(B, F) and ``recurrent_dropout`` (B, U) multiplicative masks (already scaled by
1 / (1 - rate)) or None. ``outputs`` is (B, T, U) in processing order when
``return_sequences`` else the last output (B, U); ``final_state`` is (B, U).
"""

from .._cache import install
from . import config

# Before any kernel module compiles or loads a cached function (see .._cache).
install(config.compile_time_values())
