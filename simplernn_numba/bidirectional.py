"""``Bidirectional(SimpleRNN(...))``: the Keras 3 wrapper, for our layer.

The forward layer is rebuilt from the wrapped layer's config (named
``forward_<name>``) and the backward layer from the same config with
``go_backwards=True`` (named ``backward_<name>``), exactly as Keras does: the
wrapper starts with freshly initialised weights, not the wrapped layer's.
With ``return_sequences`` the backward outputs are flipped back to input
order before merging and, as Keras forces ``zero_output_for_mask`` on both
directions then, masked steps output zeros.

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

import numpy as np

from . import _validate as V
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
            raise ValueError(f"Invalid merge mode {merge_mode!r}; expected one of {MERGE_MODES}.")
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
        self.merge_mode = merge_mode
        self.name = name or _default_name()
        self._initial_weights = None if weights is None else list(weights)
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
    def trainable(self) -> bool:
        return self.forward_layer.trainable and self.backward_layer.trainable

    @trainable.setter
    def trainable(self, value: bool) -> None:
        self.forward_layer.trainable = self.backward_layer.trainable = V.flag(value, "trainable")

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
    def __call__(self, inputs, mask=None, training=None, initial_state=None):
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
            if mask is not None:
                keep = V.mask(mask, y.shape[0], y.shape[1])[:, :, None]
                y, y_rev = np.where(keep, y, 0).astype(y.dtype), np.where(keep, y_rev, 0).astype(y.dtype)
        output = self._merge(y, np.ascontiguousarray(y_rev))
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
        if V.float_dtype(dtype).name != layers[0].dtype:
            raise ValueError(f"Bidirectional dtype {dtype!r} differs from its layers' {layers[0].dtype!r}.")
        layer = cls(layers[0], backward_layer=layers[1], **config)
        layer.trainable = trainable
        return layer

    # ------------------------------------------------------------------ interop
    @classmethod
    def from_keras(cls, keras_layer, *, device: str = "auto") -> Bidirectional:
        """Equivalent of a Keras ``Bidirectional(SimpleRNN(...))`` (Keras 3 or 2), weights copied."""
        from .convert_keras import from_keras

        if type(keras_layer).__name__ != "Bidirectional":
            raise TypeError(f"Expected a Keras Bidirectional layer; received {type(keras_layer).__name__}.")
        return from_keras(keras_layer, device=device)

    def to_keras(self, module="keras"):
        """A Keras ``Bidirectional(SimpleRNN)`` (``module="keras"`` or ``"tf_keras"``), weights copied."""
        from .convert_keras import to_keras

        return to_keras(self, module)

    @classmethod
    def from_torch(cls, rnn, **kwargs) -> Bidirectional:
        """Equivalent of a bidirectional single-layer ``torch.nn.RNN`` (``merge_mode="concat"``)."""
        from .convert_torch import from_torch

        if not getattr(rnn, "bidirectional", False):
            raise ValueError("Use SimpleRNN.from_torch for a unidirectional torch.nn.RNN.")
        return from_torch(rnn, **kwargs)

    def to_torch(self, batch_first: bool = True):
        """A bidirectional ``torch.nn.RNN`` with both directions' weights."""
        from .convert_torch import to_torch

        return to_torch(self, batch_first)

    def save(self, path) -> None:
        """Write config and both directions' weights to an ``.npz`` file; no pickle."""
        from .saving import save

        save(self, path)

    @classmethod
    def load(cls, path, *, device: str = "auto") -> Bidirectional:
        """Read a Bidirectional written by :meth:`save`; never executes code from the file."""
        from .saving import load

        layer = load(path, device=device)
        if not isinstance(layer, cls):
            raise ValueError(f"{path!r} holds a {type(layer).__name__}, not a {cls.__name__}.")
        return layer

    def __repr__(self) -> str:
        return f"Bidirectional({self.forward_layer!r}, merge_mode={self.merge_mode!r}, name={self.name!r})"
