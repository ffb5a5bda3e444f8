"""simplernn_numba: the Keras ``SimpleRNN`` layer as Numba-compiled kernels.

>>> import numpy as np
>>> from simplernn_numba import SimpleRNN
>>> SimpleRNN(4)(np.zeros((2, 3, 5), np.float32)).shape
(2, 4)
"""

from importlib import metadata as _metadata

from . import (
    _threading,
    activations,
    compiled,
    constraints,
    functional,
    initializers,
    interop,
    optimizers,
    regularizers,
)
from .bidirectional import Bidirectional
from .functional import backward, forward
from .interop.saving import load, save
from .interop.streaming import Stream
from .layer import SimpleRNN
from .seeding import set_random_seed

_threading.make_pip_tbb_loadable()

try:
    __version__ = _metadata.version("simplernn_numba")
except _metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["Bidirectional", "SimpleRNN", "Stream", "activations", "backward", "compiled", "constraints",
           "forward", "functional", "initializers", "interop", "load", "optimizers", "regularizers", "save",
           "set_random_seed"]
