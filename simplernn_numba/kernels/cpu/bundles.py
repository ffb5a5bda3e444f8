"""The arguments every CPU recurrence kernel shares, as one named tuple per direction.

Absent optional arrays are ``None`` (read through :mod:`.specialise`). Arrays are
C-contiguous and of one float dtype (float32 or float64), masks bool.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Sequence(NamedTuple):
    """One forward call. ``outputs`` receives every step's output in processing order, or only
    the last one; ``final_state`` the state after the last step (it is also the running state of
    the per-row kernels)."""

    x: np.ndarray  #: (B, T, F) inputs
    bias: np.ndarray  #: (U,) (zeros for a layer without bias)
    initial_state: np.ndarray  #: (B, U)
    mask: np.ndarray | None  #: (B, T) bool: False skips the step (state carried, output repeated)
    input_dropout: np.ndarray | None  #: (B, F) multiplier of the inputs
    recurrent_dropout: np.ndarray | None  #: (B, U) multiplier of the state entering each step
    go_backwards: bool  #: steps in reverse time order (outputs stay in processing order)
    outputs: np.ndarray  #: (B, T, U), or (B, 1, U) for the last output only
    final_state: np.ndarray  #: (B, U)


class Gradients(NamedTuple):
    """One backward pass (BPTT). ``dh`` enters holding the final state's gradient and leaves
    holding the initial state's; ``dz`` receives the pre-activation gradients in input time
    order."""

    outputs: np.ndarray  #: (B, T, U) the forward pass's outputs, processing order
    d_outputs: np.ndarray  #: (B, T, U), (B, 1, U) (last output only) or (B, 0, U) (none)
    preactivations: np.ndarray | None  #: (B, T, U) input time order, for activations that need them
    initial_state: np.ndarray  #: (B, U)
    mask: np.ndarray | None  #: (B, T) bool
    recurrent_dropout: np.ndarray | None  #: (B, U)
    go_backwards: bool
    previous: np.ndarray | None  #: (B, T, U) filled by the per-row kernels with the states entering
    #: each step (times recurrent dropout), input time order; None when filled already
    dh: np.ndarray  #: (B, U)
    dz: np.ndarray  #: (B, T, U)
