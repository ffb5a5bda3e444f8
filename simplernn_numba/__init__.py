"""simplernn_numba: the Keras ``SimpleRNN`` layer as Numba-compiled kernels.

>>> import numpy as np
>>> from simplernn_numba import SimpleRNN
>>> SimpleRNN(4)(np.zeros((2, 3, 5), np.float32)).shape
(2, 4)
"""

from . import _threading, activations, constraints, functional, initializers, optimizers, regularizers
from .bidirectional import Bidirectional
from .functional import backward, forward
from .layer import SimpleRNN
from .streaming import Stream

_threading.make_pip_tbb_loadable()

__version__ = "0.1.0"
__all__ = ["Bidirectional", "SimpleRNN", "Stream", "activations", "backward", "constraints", "forward",
           "functional", "initializers", "optimizers", "regularizers"]
