"""One global seed for every random draw without a seed of its own (``keras.utils.set_random_seed``).

Initializers and dropout masks take a ``seed``. Without one they draw from
:func:`generator`: fresh operating-system entropy by default, or, after
:func:`set_random_seed`, a stream that depends only on that seed and on the order of
the draws, so a script that calls ``set_random_seed(n)`` first gives the same weights
and dropout masks on every run, in a fresh process too.

>>> import numpy as np
>>> from simplernn_numba import SimpleRNN
>>> set_random_seed(7)
>>> first = SimpleRNN(3)(np.ones((1, 2, 4), np.float32))
>>> set_random_seed(7)
>>> bool(np.array_equal(SimpleRNN(3)(np.ones((1, 2, 4), np.float32)), first))
True
"""

from __future__ import annotations

import numbers
import random
import threading

import numpy as np

_lock = threading.Lock()
_global: np.random.Generator | None = None
_epoch = 0


def set_random_seed(seed: int) -> None:
    """Seed every later unseeded initializer and dropout draw, and Python's and NumPy's global RNGs.

    As ``keras.utils.set_random_seed``: also calls ``random.seed(seed)`` and
    ``np.random.seed(seed)``. Layers created before the call draw their dropout masks
    from the new stream too.

    Parameters
    ----------
    seed : int >= 0

    Raises
    ------
    TypeError
        If ``seed`` is not an integer (bools are refused).
    ValueError
        If ``seed`` is negative or does not fit in 32 bits (``np.random.seed``'s range).
    """
    global _global, _epoch
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int; received {seed!r} of type {type(seed).__name__}.")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32); received {seed}.")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed)
    with _lock:
        _global = np.random.default_rng(seed)
        _epoch += 1


def epoch() -> int:
    """How many times :func:`set_random_seed` has been called (a layer re-derives its
    dropout stream when this changes)."""
    return _epoch


def generator(seed: int | None = None) -> np.random.Generator:
    """A NumPy generator: from ``seed`` when given, else the next one of the global stream.

    Without a ``seed`` and before any :func:`set_random_seed`, the generator starts from
    fresh operating-system entropy.
    """
    if seed is not None:
        return np.random.default_rng(seed)
    with _lock:
        if _global is None:
            return np.random.default_rng()
        return np.random.default_rng(_global.integers(2**63))
