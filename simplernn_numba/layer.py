"""The Keras-surface ``SimpleRNN`` layer.

The layer holds weights, configuration and state; it validates arguments and
hands the arrays to :mod:`.engine`, which runs the call on the backend
:mod:`.dispatch` chooses. It contains no recurrence math. Conversion, saving, streaming and the other adapters
live in :mod:`simplernn_numba.interop` and use the layer's public attributes only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from . import (
    _threading,
    _validate,
    activations,
    constraints,
    dispatch,
    engine,
    initializers,
    regularizers,
    seeding,
)
from ._serialization import serialize

#: The constructor arguments that hold initializer, regularizer and constraint objects,
#: each with the catalog module whose ``get`` resolves it.
CONFIG_OBJECTS = {
    "kernel_initializer": initializers, "recurrent_initializer": initializers,
    "bias_initializer": initializers, "kernel_regularizer": regularizers,
    "recurrent_regularizer": regularizers, "bias_regularizer": regularizers,
    "activity_regularizer": regularizers, "kernel_constraint": constraints,
    "recurrent_constraint": constraints, "bias_constraint": constraints,
}
_FLAGS = ("use_bias", "return_sequences", "return_state", "go_backwards", "stateful", "unroll",
          "zero_output_for_mask")
_WEIGHT_NAMES = ("kernel", "recurrent_kernel", "bias")
#: The layer dtype's name -> dtype (``np.dtype(name)`` costs a fraction of a µs per call).
_DTYPES = {dt.name: dt for dt in _validate.FLOAT_DTYPES}
_layer_count = 0


def _default_name() -> str:
    global _layer_count
    _layer_count += 1
    return "simple_rnn" if _layer_count == 1 else f"simple_rnn_{_layer_count - 1}"


class SimpleRNN:
    """Fully-connected RNN where the output is fed back to the input (Keras ``SimpleRNN``).

    ``h_t = activation(x_t @ kernel + h_{t-1} @ recurrent_kernel + bias)``

    Parameters
    ----------
    units : int
        Dimensionality of the output space.
    activation : str, callable or None
        Default ``"tanh"``; None means linear. Built-in names run on the
        compiled kernels; a Python callable runs on the NumPy reference.
    use_bias : bool
    kernel_initializer, recurrent_initializer, bias_initializer : str, dict or object
        Defaults ``"glorot_uniform"``, ``"orthogonal"``, ``"zeros"``.
    kernel_regularizer, recurrent_regularizer, bias_regularizer, activity_regularizer
        ``"l1"``, ``"l2"``, ``"l1_l2"``, a config dict, a regularizer object, or None.
    kernel_constraint, recurrent_constraint, bias_constraint
        ``"max_norm"``, ``"non_neg"``, ``"unit_norm"``, ``"min_max_norm"``, an object, or None.
    dropout, recurrent_dropout : float in [0, 1)
        Variational dropout on inputs and on the recurrent state; only when
        called with ``training=True``.
    return_sequences, return_state, go_backwards, stateful, unroll : bool
        As in Keras; ``unroll`` is accepted and changes nothing (same results).
    seed : int or None
        Seeds the dropout masks; without it they come from the global stream of
        :func:`simplernn_numba.set_random_seed`.
    zero_output_for_mask : bool
        Keras' RNN argument: masked steps output zeros instead of the previous
        output (the state is carried either way). With ``return_sequences=False``
        the output is then zero in rows whose last processed step is masked.
    name, trainable, dtype : Keras layer keywords; ``dtype`` is float32 or float64.
    device : {"auto", "cpu", "cuda"}
        Where the kernels run (see :mod:`simplernn_numba.dispatch`).
    input_shape, batch_input_shape, batch_size : Keras 2 shape keywords; a
        known batch size lets a stateful layer reset its states before a call.

    Attributes
    ----------
    last_call : simplernn_numba.dispatch.CallInfo or None
        Which path the last call took: ``last_call.device`` is ``"cpu"``, ``"cuda"``
        or ``"reference"`` (None before the first call).

    Examples
    --------
    >>> import numpy as np
    >>> inputs = np.random.random([32, 10, 8]).astype(np.float32)
    >>> SimpleRNN(4)(inputs).shape
    (32, 4)
    >>> seq, state = SimpleRNN(4, return_sequences=True, return_state=True)(inputs)
    >>> seq.shape, state.shape
    ((32, 10, 4), (32, 4))
    >>> layer = SimpleRNN(4, device="cpu")
    >>> _ = layer(inputs)
    >>> layer.last_call.device
    'cpu'
    """

    def __init__(
        self,
        units: int,
        activation="tanh",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout: float = 0.0,
        recurrent_dropout: float = 0.0,
        return_sequences: bool = False,
        return_state: bool = False,
        go_backwards: bool = False,
        stateful: bool = False,
        unroll: bool = False,
        seed: int | None = None,
        *,
        zero_output_for_mask: bool = False,
        name: str | None = None,
        trainable: bool = True,
        dtype="float32",
        device: str = "auto",
        input_shape: Sequence | None = None,
        batch_input_shape: Sequence | None = None,
        batch_size: int | None = None,
    ):
        self.units = _validate.positive_int(units, "units")
        self.activation = activations.get(activation)
        for key, module in CONFIG_OBJECTS.items():
            setattr(self, key, module.get(locals()[key]))
        for key in _FLAGS:
            setattr(self, key, _validate.flag(locals()[key], key))
        self.dropout = _validate.rate(dropout, "dropout")
        self.recurrent_dropout = _validate.rate(recurrent_dropout, "recurrent_dropout")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
            raise TypeError(f"seed must be an int or None; received {seed!r}.")
        self.seed = seed
        self.name = name or _default_name()
        self.trainable = _validate.flag(trainable, "trainable")
        self.dtype = _validate.float_dtype(dtype).name
        self.device = dispatch.check_device(device)
        self._rng = None if seed is None else seeding.generator(seed)
        self._rng_epoch = -1
        self._weights: dict[str, np.ndarray | None] = dict.fromkeys(_WEIGHT_NAMES)
        self._weights_version = 0
        self._features: int | None = None
        self._state: np.ndarray | None = None
        self._activity_losses: list[float] = []
        self._cache: engine.Cache | None = None
        self.last_call: dispatch.CallInfo | None = None
        self.built = False
        if batch_input_shape is None and input_shape is not None:
            batch_input_shape = (batch_size, *tuple(input_shape))
        self._batch_size = None if batch_input_shape is None else batch_input_shape[0]
        if batch_input_shape is not None:
            self.build(batch_input_shape)

    # ------------------------------------------------------------------ weights
    def build(self, input_shape: Sequence) -> None:
        """Create the weights for inputs of shape (batch, timesteps, features); None = unknown."""
        shape = _validate.input_shape(input_shape)
        features = shape[2]
        if shape[0] is not None:
            self._batch_size = shape[0]
        dt = self.dtype
        self._set("kernel", self.kernel_initializer((features, self.units), dt), (features, self.units))
        self._set("recurrent_kernel", self.recurrent_initializer((self.units, self.units), dt),
                  (self.units, self.units))
        if self.use_bias:
            self._set("bias", self.bias_initializer((self.units,), dt), (self.units,))
        self._features = features
        self.built = True
        if self.stateful and self._batch_size is not None:
            self.reset_states()

    def _set(self, key: str, value, shape: tuple) -> None:
        arr = _validate.as_float_array(value, key, np.dtype(self.dtype))
        _validate.check_shape(arr, key, shape)
        arr = arr.copy() if np.may_share_memory(arr, value) else arr
        arr.flags.writeable = False
        self._weights[key] = arr
        self._weights_version += 1

    def _weight(self, key: str) -> np.ndarray | None:
        if not self.built:
            raise AttributeError(f"Layer {self.name!r} has no weights until it is built or called.")
        return self._weights[key]

    def _shape_of(self, key: str) -> tuple:
        return {"kernel": (self._features, self.units), "recurrent_kernel": (self.units, self.units),
                "bias": (self.units,)}[key]

    @property
    def weights_version(self) -> int:
        """A counter bumped on every change of the weights (for caches of derived arrays)."""
        return self._weights_version

    @property
    def batch_size(self) -> int | None:
        """The batch size fixed at build time or by a stateful layer's first call, else None."""
        return self._batch_size

    @property
    def kernel(self) -> np.ndarray:
        """Input kernel (features, units), read-only; assign a new array to change it."""
        return self._weight("kernel")

    @kernel.setter
    def kernel(self, value) -> None:
        self._weight("kernel")
        self._set("kernel", value, self._shape_of("kernel"))

    @property
    def recurrent_kernel(self) -> np.ndarray:
        """Recurrent kernel (units, units), read-only; assign a new array to change it."""
        return self._weight("recurrent_kernel")

    @recurrent_kernel.setter
    def recurrent_kernel(self, value) -> None:
        self._weight("recurrent_kernel")
        self._set("recurrent_kernel", value, self._shape_of("recurrent_kernel"))

    @property
    def bias(self) -> np.ndarray | None:
        """Bias (units,), or None when ``use_bias=False``."""
        return self._weight("bias")

    @bias.setter
    def bias(self, value) -> None:
        if not self.use_bias:
            raise AttributeError(f"Layer {self.name!r} has use_bias=False and no bias.")
        self._weight("bias")
        self._set("bias", value, self._shape_of("bias"))

    @property
    def weight_names(self) -> list[str]:
        """Names of the weights in Keras order."""
        return list(_WEIGHT_NAMES if self.use_bias else _WEIGHT_NAMES[:2])

    @property
    def weights(self) -> list[np.ndarray]:
        """[kernel, recurrent_kernel, bias] (no bias when use_bias=False); empty before build."""
        return [self._weights[k] for k in self.weight_names] if self.built else []

    @property
    def trainable_weights(self) -> list[np.ndarray]:
        return self.weights if self.trainable else []

    @property
    def non_trainable_weights(self) -> list[np.ndarray]:
        return [] if self.trainable else self.weights

    def get_weights(self) -> list[np.ndarray]:
        """Copies of the weights in Keras order."""
        return [w.copy() for w in self.weights]

    def set_weights(self, weights: Sequence) -> None:
        """Set weights from a list in Keras order; shapes must match, floats are cast."""
        if not self.built:
            raise ValueError(
                f"Layer {self.name!r} is not built; call build(input_shape) or the layer first."
            )
        names = self.weight_names
        weights = _validate.sequence_of(weights, f"Layer {self.name!r}", len(names),
                                f"weights ({', '.join(names)})")
        checked = []
        for key, value in zip(names, weights):
            arr = _validate.as_float_array(value, key, np.dtype(self.dtype))
            _validate.check_shape(arr, key, self._shape_of(key))
            checked.append(arr)
        for key, arr in zip(names, checked):
            self._set(key, arr, self._shape_of(key))

    def count_params(self) -> int:
        return int(sum(w.size for w in self.weights))

    def apply_constraints(self) -> None:
        """Project the weights with the configured constraints (Keras does this after each update)."""
        for key, constraint in zip(
            _WEIGHT_NAMES, (self.kernel_constraint, self.recurrent_constraint, self.bias_constraint)
        ):
            if constraint is not None and self._weights[key] is not None:
                self._set(key, constraint(self._weights[key]), self._shape_of(key))

    # ------------------------------------------------------------------ states
    @property
    def states(self) -> list:
        """[state (batch, units)] for a stateful layer whose batch size is known, else [None]."""
        return [self._state]

    @_threading.synchronized
    def reset_states(self, states=None) -> None:
        """Reset a stateful layer's state to zeros, or to ``states`` (array or list of one array).

        Raises
        ------
        AttributeError
            When the layer is not stateful.
        ValueError
            When the batch size is not known yet, or ``states`` has the wrong
            number of arrays or the wrong shape.
        """
        if not self.stateful:
            raise AttributeError("Layer must be stateful.")
        if self._batch_size is None:
            raise ValueError(
                f"Layer {self.name!r} is stateful but its batch size is not known yet: "
                "pass batch_input_shape=(batch, timesteps, features) or batch_size=..., "
                "call build() with a batch size, or call the layer once before reset_states()."
            )
        expected = (self._batch_size, self.units)
        if states is None:
            self._state = np.zeros(expected, self.dtype)
            return
        if isinstance(states, (list, tuple)) and len(states) != 1:
            raise ValueError(
                f"Layer {self.name!r} expects 1 state, but it received {len(states)} state values."
            )
        value = states[0] if isinstance(states, (list, tuple)) else states
        arr = _validate.as_float_array(value, "states", np.dtype(self.dtype))
        if arr.shape != expected:
            raise ValueError(
                f"State 0 is incompatible with layer {self.name!r}: expected shape={expected}, "
                f"found shape={arr.shape}."
            )
        self._state = arr.copy() if np.may_share_memory(arr, value) else arr

    # ------------------------------------------------------------------ call
    def __call__(self, inputs: ArrayLike, mask: ArrayLike | None = None, training: bool | int | None = None,
                 initial_state: ArrayLike | Sequence[ArrayLike] | None = None,
                 ) -> np.ndarray | list[np.ndarray]:
        """Run the layer.

        Parameters
        ----------
        inputs : array (batch, timesteps, features), timesteps >= 1
        mask : array (batch, timesteps) of bool, optional
            True marks steps to use; False steps are skipped.
        training : bool or None, optional
            Dropout is applied only when True. NumPy bools and the integers 0 and 1
            (Keras 2's learning phase) are accepted too; anything else is a TypeError.
        initial_state : array (batch, units) or list of one, optional

        Returns
        -------
        output : (batch, units), or (batch, timesteps, units) with return_sequences;
        with return_state, the list [output, final_state (batch, units)].

        After the call, :attr:`last_call` says which kernels ran.

        A non-stateful layer may be called from several threads at once. Calls
        of a stateful layer (and the first, building call of any layer) are
        serialised by a per-layer lock.
        """
        if training is not None and training is not True and training is not False:
            training = _validate.training(training)
        if self.stateful or not self.built:
            with _threading.object_lock(self):
                return self._call(inputs, mask, training, initial_state)
        return self._call(inputs, mask, training, initial_state)

    def _call(self, inputs, mask, training, initial_state):
        dt = _DTYPES.get(self.dtype) or np.dtype(self.dtype)
        if mask is not None or initial_state is not None:
            _validate.same_memory(inputs=inputs, mask=mask, initial_state=initial_state)
        x = _validate.inputs(inputs, dt, self._features,
                     f"layer {self.name!r} was built for {self._features} features")
        if not self.built:
            self.build((self._batch_size if self.stateful else None, *x.shape[1:]))
        batch, steps, features = x.shape
        mask = _validate.mask(mask, batch, steps)
        h0 = self._initial_state(initial_state, batch, dt)
        input_dropout = recurrent_dropout = None
        if training and (self.dropout or self.recurrent_dropout):
            rng = self._dropout_generator()
            input_dropout = engine.dropout_mask(rng, self.dropout, (batch, features), dt)
            recurrent_dropout = engine.dropout_mask(rng, self.recurrent_dropout, (batch, self.units), dt)
        stored = self._weights
        self._cache = None  # the last call's arrays go first: their memory serves this call's
        output, state, self._cache, self.last_call = engine.call_layer(
            self, (stored["kernel"], stored["recurrent_kernel"], stored["bias"]), x, h0, mask,
            input_dropout, recurrent_dropout, bool(training))
        if self.stateful:
            self._state = state
        result = [output, state] if self.return_state else output
        self._record_activity(result)
        return result

    def _initial_state(self, initial_state, batch: int, dt: np.dtype) -> np.ndarray:
        if self.stateful:
            if self._batch_size is None:
                self._batch_size = batch
            if batch != self._batch_size:
                raise ValueError(
                    f"Stateful layer {self.name!r} was built for batch size {self._batch_size}; "
                    f"received inputs with batch size {batch}."
                )
        if initial_state is not None:
            return _validate.state(initial_state, batch, self.units, dt)
        if self.stateful:
            if self._state is None:
                self.reset_states()
            return self._state
        return np.zeros((batch, self.units), dt)

    def _dropout_generator(self) -> np.random.Generator:
        """The generator of this layer's dropout masks: its own with a ``seed``, else one drawn
        from the global stream of :func:`simplernn_numba.set_random_seed` (anew after each reseed)."""
        if self.seed is None and self._rng_epoch != seeding.epoch():
            self._rng, self._rng_epoch = seeding.generator(), seeding.epoch()
        return self._rng

    # ------------------------------------------------------------------ losses
    def _record_activity(self, result) -> None:
        reg = self.activity_regularizer
        if reg is None:
            self._activity_losses = []
            return
        outputs = result if isinstance(result, list) else [result]
        self._activity_losses = [float(reg(o)) / max(o.shape[0], 1) for o in outputs]

    @property
    def losses(self) -> list[float]:
        """Weight regularization penalties, then the activity penalties of the last call.

        As in Keras, each activity penalty is divided by the batch size, and is
        taken on every returned array (output and, with return_state, state).
        """
        losses = []
        if self.built:
            for key, reg in zip(
                _WEIGHT_NAMES,
                (self.kernel_regularizer, self.recurrent_regularizer, self.bias_regularizer),
            ):
                if reg is not None and self._weights[key] is not None:
                    losses.append(float(reg(self._weights[key])))
        return losses + list(self._activity_losses)

    # ------------------------------------------------------------------ shapes and config
    def compute_output_shape(self, input_shape: Sequence):
        """Output shape(s) for inputs of shape (batch, timesteps, features)."""
        shape = tuple(input_shape)
        if len(shape) != 3:
            raise ValueError(
                f"input_shape must be (batch, timesteps, features); received {shape}."
            )
        batch, steps = shape[0], shape[1]
        out = (batch, steps, self.units) if self.return_sequences else (batch, self.units)
        return [out, (batch, self.units)] if self.return_state else out

    def get_config(self) -> dict:
        """Keras-compatible config (plus ``seed``, which Keras drops)."""
        config = {
            "name": self.name, "trainable": self.trainable, "dtype": self.dtype,
            "units": self.units, "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
        }
        for key in CONFIG_OBJECTS:
            config[key] = serialize(getattr(self, key))
        config.update(
            dropout=self.dropout, recurrent_dropout=self.recurrent_dropout,
            return_sequences=self.return_sequences, return_state=self.return_state,
            go_backwards=self.go_backwards, stateful=self.stateful, unroll=self.unroll,
            zero_output_for_mask=self.zero_output_for_mask, seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config: dict) -> SimpleRNN:
        """Rebuild a layer from :meth:`get_config` output (unknown keys raise TypeError)."""
        return cls(**config)

    def __repr__(self) -> str:
        act = activations.serialize(self.activation)
        flags = "".join(f", {key}=True" for key in ("go_backwards", "stateful", "zero_output_for_mask")
                        if getattr(self, key))
        return (f"SimpleRNN(units={self.units}, activation={act!r}, dtype={self.dtype!r}, "
                f"device={self.device!r}, return_sequences={self.return_sequences}, "
                f"return_state={self.return_state}{flags}, built={self.built}, name={self.name!r})")

    # ------------------------------------------------------------------ gradients (backward pass)
    def backward(self, d_output: ArrayLike | None = None,
                 d_state: ArrayLike | None = None) -> dict[str, np.ndarray | None]:
        """Gradients through the last call, which must have used ``training=True``.

        The saved forward pass belongs to the layer, so train a layer from one
        thread: with several threads calling it, "the last call" is whichever
        finished last.

        Parameters
        ----------
        d_output : array, optional
            Gradient of the loss with respect to the output that call returned:
            (batch, timesteps, units) with ``return_sequences``, else (batch, units).
            None means zero.
        d_state : array (batch, units), optional
            Gradient with respect to the returned final state; only with
            ``return_state=True``.

        Returns
        -------
        dict
            ``kernel``, ``recurrent_kernel``, ``bias`` (None without a bias):
            gradients of the loss plus ``sum(self.losses)`` (weight regularizers
            and the activity regularizer on every returned array, divided by the
            batch size as in :attr:`losses`); ``inputs`` (batch, timesteps, features)
            and ``initial_state`` (batch, units): gradients of the loss plus the
            activity penalty. All in the layer dtype.

        Notes
        -----
        A stateful layer starts each call from the state the previous call left;
        the gradient stops at that boundary (truncated backpropagation through
        time): ``initial_state`` is the gradient for the carried-in state and is
        not propagated into earlier calls.

        Raises
        ------
        RuntimeError
            If the last call of the layer did not use ``training=True``.
        ValueError, TypeError
            For gradients of the wrong shape or dtype.
        """
        cache = self._cache
        if cache is None:
            raise RuntimeError(
                f"Layer {self.name!r} has nothing to differentiate: call it with training=True "
                "right before backward()."
            )
        if d_state is not None and not self.return_state:
            raise ValueError(
                f"Layer {self.name!r} has return_state=False, so its call returned no state; "
                "d_state must be None."
            )
        d_output, d_state = engine.checked_gradients(cache, d_output, d_state)
        return engine.layer_gradients(self, cache, d_output, d_state)

    @property
    def saved_forward(self) -> engine.Cache | None:
        """What :meth:`backward` needs from the last call: an opaque :class:`simplernn_numba.engine.Cache`
        after a call with ``training=True``, None otherwise."""
        return self._cache
