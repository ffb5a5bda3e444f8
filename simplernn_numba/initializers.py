"""Weight initializers with Keras names and defaults.

Each initializer is called as ``init(shape, dtype)`` and returns a NumPy array.
A ``seed`` makes it reproducible; without one every call draws fresh values,
as in Keras 3, from the global stream that :func:`simplernn_numba.set_random_seed` seeds.

>>> w = GlorotUniform(seed=0)((3, 2), "float32")
>>> w.shape, w.dtype
((3, 2), dtype('float32'))
"""

from __future__ import annotations

import math

import numpy as np

from . import seeding
from ._serialization import Serializable, make_registry, resolve, serialize

__all__ = [
    "Constant", "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "Identity",
    "LecunNormal", "LecunUniform", "Ones", "Orthogonal", "RandomNormal", "RandomUniform",
    "TruncatedNormal", "VarianceScaling", "Zeros", "get", "serialize",
]


class Initializer(Serializable):
    """Base class: ``__call__(shape, dtype) -> np.ndarray``."""

    def __call__(self, shape, dtype="float32") -> np.ndarray:
        raise NotImplementedError


class _Seeded(Initializer):
    def __init__(self, seed: int | None = None):
        self.seed = seed

    def _rng(self) -> np.random.Generator:
        return seeding.generator(self.seed)

    def get_config(self) -> dict:
        return {"seed": self.seed}


class Zeros(Initializer):
    """All zeros."""

    def __call__(self, shape, dtype="float32"):
        return np.zeros(shape, dtype)


class Ones(Initializer):
    """All ones."""

    def __call__(self, shape, dtype="float32"):
        return np.ones(shape, dtype)


class Constant(Initializer):
    """Every entry equal to ``value``."""

    def __init__(self, value: float = 0.0):
        self.value = float(value)

    def __call__(self, shape, dtype="float32"):
        return np.full(shape, self.value, dtype)

    def get_config(self):
        return {"value": self.value}


class RandomUniform(_Seeded):
    """Uniform on ``[minval, maxval)``."""

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def __call__(self, shape, dtype="float32"):
        return self._rng().uniform(self.minval, self.maxval, shape).astype(dtype)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class RandomNormal(_Seeded):
    """Normal with ``mean`` and ``stddev``."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype="float32"):
        return self._rng().normal(self.mean, self.stddev, shape).astype(dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


def _truncated_normal(rng: np.random.Generator, shape, stddev: float) -> np.ndarray:
    """Normal(0, stddev) redrawn until every value lies within two stddevs."""
    out = rng.normal(0.0, stddev, shape)
    bad = np.abs(out) > 2 * stddev
    while bad.any():
        out[bad] = rng.normal(0.0, stddev, int(bad.sum()))
        bad = np.abs(out) > 2 * stddev
    return out


class TruncatedNormal(_Seeded):
    """Normal with ``mean``/``stddev``, values beyond two stddevs redrawn."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def __call__(self, shape, dtype="float32"):
        return (self.mean + _truncated_normal(self._rng(), shape, self.stddev)).astype(dtype)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


def _fans(shape) -> tuple[float, float]:
    if len(shape) < 1:
        return 1.0, 1.0
    if len(shape) == 1:
        return float(shape[0]), float(shape[0])
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return float(shape[-2] * receptive), float(shape[-1] * receptive)


class VarianceScaling(_Seeded):
    """Keras ``VarianceScaling``: scale / fan, normal (truncated) or uniform."""

    _MODES = ("fan_in", "fan_out", "fan_avg")
    _DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "uniform")

    def __init__(self, scale: float = 1.0, mode: str = "fan_in",
                 distribution: str = "truncated_normal", seed: int | None = None):
        super().__init__(seed)
        if scale <= 0:
            raise ValueError(f"VarianceScaling scale must be positive; received {scale}.")
        if mode not in self._MODES:
            raise ValueError(f"VarianceScaling mode must be one of {self._MODES}; received {mode!r}.")
        if distribution == "normal":
            distribution = "truncated_normal"
        if distribution not in self._DISTRIBUTIONS:
            raise ValueError(
                f"VarianceScaling distribution must be one of {self._DISTRIBUTIONS}; "
                f"received {distribution!r}."
            )
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def __call__(self, shape, dtype="float32"):
        fan_in, fan_out = _fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        rng = self._rng()
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            out = rng.uniform(-limit, limit, shape)
        elif self.distribution == "truncated_normal":
            # 0.879... is the stddev of a unit normal truncated at two stddevs.
            out = _truncated_normal(rng, shape, math.sqrt(variance) / 0.87962566103423978)
        else:
            out = rng.normal(0.0, math.sqrt(variance), shape)
        return out.astype(dtype)

    def get_config(self):
        return {"scale": self.scale, "mode": self.mode,
                "distribution": self.distribution, "seed": self.seed}


def _variance_scaling_preset(name: str, scale: float, mode: str, distribution: str):
    class Preset(VarianceScaling):
        def __init__(self, seed: int | None = None):
            super().__init__(scale, mode, distribution, seed)

        def get_config(self):
            return {"seed": self.seed}

    Preset.__name__ = Preset.__qualname__ = name
    Preset.__doc__ = f"``VarianceScaling(scale={scale}, mode={mode!r}, distribution={distribution!r})``."
    return Preset


GlorotUniform = _variance_scaling_preset("GlorotUniform", 1.0, "fan_avg", "uniform")
GlorotNormal = _variance_scaling_preset("GlorotNormal", 1.0, "fan_avg", "truncated_normal")
HeUniform = _variance_scaling_preset("HeUniform", 2.0, "fan_in", "uniform")
HeNormal = _variance_scaling_preset("HeNormal", 2.0, "fan_in", "truncated_normal")
LecunUniform = _variance_scaling_preset("LecunUniform", 1.0, "fan_in", "uniform")
LecunNormal = _variance_scaling_preset("LecunNormal", 1.0, "fan_in", "truncated_normal")


class Orthogonal(_Seeded):
    """Random orthogonal matrix (QR of a normal matrix), times ``gain``."""

    def __init__(self, gain: float = 1.0, seed: int | None = None):
        super().__init__(seed)
        self.gain = float(gain)

    def __call__(self, shape, dtype="float32"):
        if len(shape) < 2:
            raise ValueError(f"Orthogonal needs a shape of rank >= 2; received {tuple(shape)}.")
        rows = math.prod(shape[:-1])
        cols = shape[-1]
        flat = self._rng().normal(0.0, 1.0, (max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(flat)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q).reshape(shape).astype(dtype)

    def get_config(self):
        return {"gain": self.gain, "seed": self.seed}


class Identity(Initializer):
    """``gain`` times the identity matrix (2-D shapes only)."""

    def __init__(self, gain: float = 1.0):
        self.gain = float(gain)

    def __call__(self, shape, dtype="float32"):
        if len(shape) != 2:
            raise ValueError(f"Identity needs a 2-D shape; received {tuple(shape)}.")
        return (self.gain * np.eye(*shape)).astype(dtype)

    def get_config(self):
        return {"gain": self.gain}


_REGISTRY = make_registry(
    [Zeros, Ones, Constant, RandomUniform, RandomNormal, TruncatedNormal, VarianceScaling,
     GlorotUniform, GlorotNormal, HeUniform, HeNormal, LecunUniform, LecunNormal,
     Orthogonal, Identity],
    {"uniform": RandomUniform, "normal": RandomNormal, "zero": Zeros, "one": Ones,
     "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
     "he_uniform": HeUniform, "he_normal": HeNormal,
     "lecun_uniform": LecunUniform, "lecun_normal": LecunNormal},
)


def get(identifier) -> Initializer:
    """Resolve a name (``"glorot_uniform"``), config dict, instance or callable."""
    return resolve(identifier, _REGISTRY, "initializer")



