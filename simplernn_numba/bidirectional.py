"""``Bidirectional(SimpleRNN(...))``: the Keras 3 wrapper, for our layer.

The forward layer is rebuilt from the wrapped layer's config (named
``forward_<name>``) and the backward layer from the same config with
``go_backwards=True`` (named ``backward_<name>``), exactly as Keras does: the
wrapper starts with freshly initialised weights, not the wrapped layer's.
With ``return_sequences`` the backward outputs are flipped back to input
order before merging. As in Keras, both layers get
``zero_output_for_mask=return_sequences`` (the wrapped layer's own value is
overridden), so with ``return_sequences`` masked steps output zeros.

The two directions run one after the other. Running them in two threads is
only safe under a thread-safe Numba threading layer (the default
``workqueue`` layer aborts the process when parallel kernels are entered
from several threads), so this module does not do it.

>>> import numpy as np
>>> from simplernn_numba import SimpleRNN
>>> layer = Bidirectional(SimpleRNN(4, return_sequences=True))
>>> layer(np.zeros((2, 3, 5), np.float32)).shape
(2, 3, 8)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from . import _validate
from .dispatch import CallInfo
from .layer import SimpleRNN

MERGE_MODES = ("concat", "sum", "mul", "ave", None)
_COMMON = ("stateful", "return_sequences", "return_state")
_count = 0


def _default_name() -> str:
    global _count
    _count += 1
    return "bidirectional" if _count == 1 else f"bidirectional_{_count - 1}"


def _prefixed(prefix: str, name: str) -> str:
    return name if name.startswith(prefix) else prefix + name


def _clone(layer: SimpleRNN, **changes) -> SimpleRNN:
    config = {**layer.get_config(), **changes}
    return SimpleRNN(**config, device=layer.device)


@dataclass(frozen=True)
class _Saved:
    """What :meth:`Bidirectional.backward` needs from a ``training=True`` call.

    The two layers' caches (to check they still belong to that call) and the
    two outputs as merged: ``y`` and ``y_rev`` (already flipped to input order
    with return_sequences).
    """

    forward_cache: object
    backward_cache: object
    y: np.ndarray
    y_rev: np.ndarray


class Bidirectional:
    """Bidirectional wrapper for :class:`~simplernn_numba.SimpleRNN` (Keras ``Bidirectional``).

    Parameters
    ----------
    layer : SimpleRNN
        Its config (not its weights) defines the forward layer.
    merge_mode : {"concat", "sum", "mul", "ave", None}
        How the forward and backward outputs are combined; None returns both
        as a list.
    weights : list of arrays, optional
        Initial weights: forward weights then backward weights, in Keras order,
        applied when the layer is built.
    backward_layer : SimpleRNN, optional
        Used as the backward layer instead of a copy of ``layer``; it must have
        the other ``go_backwards`` value and the same ``stateful``,
        ``return_sequences`` and ``return_state``.
    name : str, optional

    Call returns (batch, timesteps, 2 units) for ``concat`` with
    ``return_sequences`` ((batch, 2 units) without); ``units`` instead of
    ``2 units`` for sum/mul/ave; ``[forward, backward]`` for None. With
    ``return_state`` the forward and backward final states follow:
    ``[output, h_forward, h_backward]`` (``[y, y_rev, h_forward, h_backward]``
    for None).
    """

    def __init__(self, layer: SimpleRNN, merge_mode: str | None = "concat", weights=None,
                 backward_layer: SimpleRNN | None = None, *, name: str | None = None):
        if not isinstance(layer, SimpleRNN):
            raise TypeError(f"Bidirectional wraps a SimpleRNN layer; received {type(layer).__name__}.")
        if backward_layer is not None and not isinstance(backward_layer, SimpleRNN):
            raise TypeError(
                f"backward_layer must be a SimpleRNN layer; received {type(backward_layer).__name__}."
            )
        if merge_mode not in MERGE_MODES:
            hint = _validate.did_you_mean(merge_mode, MERGE_MODES) if isinstance(merge_mode, str) else ""
            raise ValueError(f"Invalid merge mode {merge_mode!r}; expected one of {MERGE_MODES}.{hint}")
        self.forward_layer = _clone(layer, name=_prefixed("forward_", layer.name))
        if backward_layer is None:
            backward_layer = _clone(layer, go_backwards=True, name=_prefixed("backward_", layer.name))
        self.backward_layer = backward_layer
        if self.forward_layer.go_backwards == self.backward_layer.go_backwards:
            raise ValueError(
                "Forward layer and backward layer should have different `go_backwards` values; "
                f"both have go_backwards={self.forward_layer.go_backwards}."
            )
        for attr in _COMMON:
            fwd, bwd = getattr(self.forward_layer, attr), getattr(self.backward_layer, attr)
            if fwd != bwd:
                raise ValueError(
                    f"Forward layer and backward layer must have the same {attr!r}; "
                    f"received {fwd} (forward) and {bwd} (backward)."
                )
        for direction in (self.forward_layer, self.backward_layer):  # as Keras does
            direction.zero_output_for_mask = direction.return_sequences
        self.merge_mode = merge_mode
        self.name = name or _default_name()
        self._initial_weights = None if weights is None else list(weights)
        self._saved: _Saved | None = None
        if self.forward_layer.built and self.backward_layer.built:
            self._apply_initial_weights()

    # ------------------------------------------------------------------ attributes
    @property
    def stateful(self) -> bool:
        return self.forward_layer.stateful

    @property
    def return_sequences(self) -> bool:
        return self.forward_layer.return_sequences

    @property
    def return_state(self) -> bool:
        return self.forward_layer.return_state

    @property
    def dtype(self) -> str:
        return self.forward_layer.dtype

    @property
    def built(self) -> bool:
        return self.forward_layer.built and self.backward_layer.built

    @property
    def last_call(self) -> tuple[CallInfo | None, CallInfo | None]:
        """(forward, backward): each layer's :attr:`SimpleRNN.last_call`."""
        return self.forward_layer.last_call, self.backward_layer.last_call

    @property
    def trainable(self) -> bool:
        return self.forward_layer.trainable and self.backward_layer.trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self.forward_layer.trainable = self.backward_layer.trainable = _validate.flag(value, "trainable")

    # ------------------------------------------------------------------ weights
    def build(self, input_shape: Sequence) -> None:
        """Build both layers for inputs of shape (batch, timesteps, features)."""
        for layer in (self.forward_layer, self.backward_layer):
            if not layer.built:
                layer.build(input_shape)
        self._apply_initial_weights()

    def _apply_initial_weights(self) -> None:
        if self._initial_weights is not None:
            weights, self._initial_weights = self._initial_weights, None
            self.set_weights(weights)

    @property
    def weights(self) -> list[np.ndarray]:
        """Forward weights then backward weights, each in Keras order."""
        return self.forward_layer.weights + self.backward_layer.weights

    @property
    def trainable_weights(self) -> list[np.ndarray]:
        return self.forward_layer.trainable_weights + self.backward_layer.trainable_weights

    def get_weights(self) -> list[np.ndarray]:
        return self.forward_layer.get_weights() + self.backward_layer.get_weights()

    def set_weights(self, weights: Sequence) -> None:
        """Set forward then backward weights (Keras order) from one list."""
        weights = list(weights)
        count = len(self.forward_layer.weight_names)
        expected = count + len(self.backward_layer.weight_names)
        if len(weights) != expected:
            raise ValueError(
                f"Layer {self.name!r} expects {expected} weights (forward then backward); "
                f"received {len(weights)}."
            )
        self.forward_layer.set_weights(weights[:count])
        self.backward_layer.set_weights(weights[count:])

    def count_params(self) -> int:
        return self.forward_layer.count_params() + self.backward_layer.count_params()

    @property
    def losses(self) -> list[float]:
        return self.forward_layer.losses + self.backward_layer.losses

    # ------------------------------------------------------------------ states
    @property
    def states(self) -> list | None:
        """[forward state, backward state] of a stateful layer, else None (as Keras)."""
        states = self.forward_layer.states + self.backward_layer.states
        return None if any(s is None for s in states) else states

    def reset_states(self, states=None) -> None:
        """Reset both directions to zeros, or to ``states`` = [forward, backward]."""
        if not self.stateful:
            raise AttributeError("Layer must be stateful.")
        fwd = bwd = None
        if states is not None:
            fwd, bwd = self._split_states(states, "states")
        self.forward_layer.reset_states(fwd)
        self.backward_layer.reset_states(bwd)

    @staticmethod
    def _split_states(states, name: str):
        if not isinstance(states, (list, tuple)) or len(states) != 2:
            count = len(states) if isinstance(states, (list, tuple)) else "an array, not a list"
            raise ValueError(
                f"Bidirectional(SimpleRNN) has 2 states, [forward, backward]; {name} received {count}."
            )
        return states[0], states[1]

    # ------------------------------------------------------------------ call
    def __call__(self, inputs: ArrayLike, mask: ArrayLike | None = None, training: bool | int | None = None,
                 initial_state: Sequence[ArrayLike] | None = None) -> np.ndarray | list[np.ndarray]:
        """Run both directions and merge them.

        Parameters
        ----------
        inputs : array (batch, timesteps, features)
        mask : array (batch, timesteps) of bool, optional
        training : bool, optional
        initial_state : list [forward (batch, units), backward (batch, units)], optional

        Returns
        -------
        The merged output, a list (see the class docstring).
        """
        training = _validate.training(training)
        fwd_state = bwd_state = None
        if initial_state is not None:
            fwd_state, bwd_state = self._split_states(initial_state, "initial_state")
        y = self.forward_layer(inputs, mask=mask, training=training, initial_state=fwd_state)
        y_rev = self.backward_layer(inputs, mask=mask, training=training, initial_state=bwd_state)
        states = []
        if self.return_state:
            states = [y[1], y_rev[1]]
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = y_rev[:, ::-1]
        y_rev = np.ascontiguousarray(y_rev)
        output = self._merge(y, y_rev)
        self._saved = (_Saved(self.forward_layer.saved_forward, self.backward_layer.saved_forward, y, y_rev)
                       if training else None)
        if self.merge_mode is None:
            return output + states if self.return_state else output
        return [output, *states] if self.return_state else output

    def _merge(self, y: np.ndarray, y_rev: np.ndarray):
        if self.merge_mode == "concat":
            return np.concatenate([y, y_rev], axis=-1)
        if self.merge_mode == "sum":
            return y + y_rev
        if self.merge_mode == "ave":
            return (y + y_rev) / 2
        if self.merge_mode == "mul":
            return y * y_rev
        return [y, y_rev]

    # ------------------------------------------------------------------ gradients (backward pass)
    def backward(self, d_output: ArrayLike | None = None,
                 d_states: Sequence[ArrayLike] | None = None) -> dict:
        """Gradients through the last call, which must have used ``training=True``.

        Each direction's own :meth:`SimpleRNN.backward` does the work (masked
        outputs pass no gradient back there); this method only undoes the merge
        and the flip of the backward sequence.

        Parameters
        ----------
        d_output : array or list of two, optional
            Gradient of the loss with respect to the merged output that call
            returned: its shape (see the class docstring), or for
            ``merge_mode=None`` a list [d_forward, d_backward] of arrays (or None).
            None means zero.
        d_states : list [d_h_forward, d_h_backward], optional
            Gradients with respect to the returned final states (batch, units),
            each optional; only with ``return_state=True``.

        Returns
        -------
        dict
            ``forward`` and ``backward``: each layer's ``kernel``,
            ``recurrent_kernel`` and ``bias`` (None without a bias) gradients,
            including that layer's weight and activity regularizers, so that
            together they are the gradients of the loss plus ``sum(self.losses)``;
            ``inputs`` (batch, timesteps, features): the sum over both directions;
            ``initial_state``: [forward (batch, units), backward (batch, units)].

        Raises
        ------
        RuntimeError
            If the last call of this wrapper (or of one of its layers since)
            did not use ``training=True``.
        ValueError, TypeError
            For gradients of the wrong structure, shape or dtype.
        """
        saved = self._saved
        if saved is None or saved.forward_cache is not self.forward_layer.saved_forward \
                or saved.backward_cache is not self.backward_layer.saved_forward:
            raise RuntimeError(
                f"Layer {self.name!r} has nothing to differentiate: call it with training=True "
                "right before backward()."
            )
        d_y, d_y_rev = self._unmerge(d_output, saved)
        d_h = d_h_rev = None
        if d_states is not None:
            if not self.return_state:
                raise ValueError(
                    f"Layer {self.name!r} has return_state=False, so its call returned no states; "
                    "d_states must be None."
                )
            d_h, d_h_rev = self._split_states(d_states, "d_states")
        if self.return_sequences and d_y_rev is not None:
            d_y_rev = np.ascontiguousarray(d_y_rev[:, ::-1])
        fwd = self.forward_layer.backward(d_y, d_h)
        bwd = self.backward_layer.backward(d_y_rev, d_h_rev)
        weights = ("kernel", "recurrent_kernel", "bias")
        return {
            "forward": {key: fwd[key] for key in weights},
            "backward": {key: bwd[key] for key in weights},
            "inputs": fwd["inputs"] + bwd["inputs"],
            "initial_state": [fwd["initial_state"], bwd["initial_state"]],
        }

    def _unmerge(self, d_output, saved: _Saved):
        """Split the merged output's gradient into the two directions' (None for zero)."""
        y, y_rev = saved.y, saved.y_rev
        if self.merge_mode is None:
            if d_output is None:
                return None, None
            if not isinstance(d_output, (list, tuple)) or len(d_output) != 2:
                count = len(d_output) if isinstance(d_output, (list, tuple)) else "an array, not a list"
                raise ValueError(
                    "With merge_mode=None the call returned 2 outputs, so d_output must be "
                    f"[d_forward, d_backward]; received {count}."
                )
            return (_validate.gradient(d_output[0], "d_output[0]", y.shape, y.dtype),
                    _validate.gradient(d_output[1], "d_output[1]", y_rev.shape, y_rev.dtype))
        shape = (*y.shape[:-1], y.shape[-1] + y_rev.shape[-1]) if self.merge_mode == "concat" else y.shape
        grad = _validate.gradient(d_output, "d_output", shape, y.dtype)
        if grad is None:
            return None, None
        if self.merge_mode == "concat":
            units = y.shape[-1]
            return np.ascontiguousarray(grad[..., :units]), np.ascontiguousarray(grad[..., units:])
        if self.merge_mode == "sum":
            return grad, grad
        if self.merge_mode == "ave":
            half = grad / y.dtype.type(2)
            return half, half
        return grad * y_rev, grad * y  # mul

    # ------------------------------------------------------------------ shapes and config
    def compute_output_shape(self, input_shape: Sequence):
        """Output shape(s) for inputs of shape (batch, timesteps, features)."""
        shape = self.forward_layer.compute_output_shape(input_shape)
        state_shapes = []
        if self.return_state:
            shape, state_shapes = shape[0], [shape[1], shape[1]]
        if self.merge_mode == "concat":
            shape = (*shape[:-1], 2 * shape[-1])
        output = [shape, shape] if self.merge_mode is None else [shape]
        return output + state_shapes if (self.return_state or self.merge_mode is None) else shape

    def get_config(self) -> dict:
        """Keras-style config: merge mode and both layers' configs."""
        return {
            "name": self.name, "trainable": self.trainable, "dtype": self.dtype,
            "merge_mode": self.merge_mode,
            "layer": {"class_name": "SimpleRNN", "config": self.forward_layer.get_config()},
            "backward_layer": {"class_name": "SimpleRNN", "config": self.backward_layer.get_config()},
        }

    @classmethod
    def from_config(cls, config: dict, *, device: str = "auto") -> Bidirectional:
        """Rebuild from :meth:`get_config` output; only ``SimpleRNN`` sub-layers are accepted."""
        config = dict(config)
        layers = []
        for key in ("layer", "backward_layer"):
            entry = config.pop(key, None)
            if not isinstance(entry, dict) or entry.get("class_name") != "SimpleRNN" \
                    or not isinstance(entry.get("config"), dict):
                raise ValueError(
                    f"Bidirectional config {key!r} must be {{'class_name': 'SimpleRNN', 'config': {{...}}}}; "
                    f"received {entry!r}."
                )
            layers.append(SimpleRNN(**entry["config"], device=device))
        trainable = config.pop("trainable", True)
        dtype = config.pop("dtype", layers[0].dtype)
        if _validate.float_dtype(dtype).name != layers[0].dtype:
            raise ValueError(f"Bidirectional dtype {dtype!r} differs from its layers' {layers[0].dtype!r}.")
        layer = cls(layers[0], backward_layer=layers[1], **config)
        layer.trainable = trainable
        return layer

    def __repr__(self) -> str:
        return f"Bidirectional({self.forward_layer!r}, merge_mode={self.merge_mode!r}, name={self.name!r})"
