"""The contract every kernel backend implements: :class:`Backend`.

:mod:`.reference`, :mod:`.cpu` and :mod:`.cuda` each export ``BACKEND``, a
:class:`KernelBackend` holding their functions; :mod:`simplernn_numba.dispatch` returns one
and :mod:`simplernn_numba.engine` calls it. The arrays a backend receives are already
validated (see :mod:`simplernn_numba.kernels` for shapes and dtypes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Backend(Protocol):
    """What the engine needs from a kernel backend.

    Attributes and methods
    ----------------------
    name : str
        ``"reference"``, ``"cpu"`` or ``"cuda"`` (``layer.last_call.device``).
    forward(x, kernel, recurrent_kernel, bias, initial_state, *, mask, input_dropout,
            recurrent_dropout, go_backwards, activation, return_sequences)
        Inference: ``(outputs, final_state)``, outputs (B, T, U) or the last one (B, U).
    forward_for_training(... same arguments ...)
        The forward pass of a call a backward pass follows (``return_sequences=True``): what
        :meth:`backward` needs, the outputs (B, T, U) and the final state.
    backward(x, kernel, recurrent_kernel, bias, initial_state, outputs, d_outputs, d_state, *,
             mask, input_dropout, recurrent_dropout, go_backwards, activation)
        The gradients, a dict: ``inputs``, ``initial_state``, ``kernel``, ``recurrent_kernel``,
        ``bias`` (None without a bias).
    prepare_weights(owner, version, arrays)
        ``arrays`` (kernel, recurrent_kernel, bias) as the backend reads them, cached per
        ``owner`` (a layer) while ``version`` (bumped on every weight change) holds.
    last_plan()
        The plan of this thread's last call on the backend (None where it names none).
    """

    name: str
    forward: Callable[..., tuple]
    forward_for_training: Callable[..., tuple]
    backward: Callable[..., dict]
    prepare_weights: Callable[[Any, int, tuple], tuple]
    last_plan: Callable[[], Any]


def unchanged_weights(owner, version: int, arrays: tuple) -> tuple:
    """``arrays`` as they are: backends that read host arrays directly need no preparation."""
    return arrays


def no_plan() -> None:
    """The plan of a backend that names none."""
    return None


@dataclass(frozen=True, slots=True)
class KernelBackend:
    """A backend's functions under the names of :class:`Backend` (which it implements)."""

    name: str
    forward: Callable[..., tuple]
    forward_for_training: Callable[..., tuple]
    backward: Callable[..., dict]
    prepare_weights: Callable[[Any, int, tuple], tuple] = unchanged_weights
    last_plan: Callable[[], Any] = no_plan
