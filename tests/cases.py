"""The shared case table (:mod:`simplernn_numba.bench.cases`) under the names the tests use."""

from simplernn_numba.bench.cases import ACTIVATIONS, Problem, tolerance
from simplernn_numba.bench.cases import random_problem as make_problem

__all__ = ["ACTIVATIONS", "Problem", "make_problem", "tolerance"]
