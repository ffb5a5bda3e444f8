"""Adapters around the layers: conversion, export, saving, streaming and batch inference.

Each module uses the layers' public attributes only, and the layers import none of
them (dependencies point from here to :mod:`simplernn_numba.layer`, never back).
Optional packages (Keras, torch, onnx, Dask, h5py) are imported inside the functions
that need them.

- :mod:`.keras`: :func:`from_keras`, :func:`to_keras` (Keras 3 and tf_keras), and
  :func:`load_model` (a saved ``.keras`` or ``.h5`` model, without Keras; h5py).
- :mod:`.torch`: :func:`from_torch`, :func:`to_torch` (``torch.nn.RNN``).
- :mod:`.onnx`: :func:`to_onnx` (the standard ONNX ``RNN`` operator).
- :mod:`.saving`: :func:`save`, :func:`load` (``.npz`` without pickle).
- :mod:`.streaming`: :class:`Stream`, :func:`step` (one timestep at a time).
- :mod:`.dask`: :func:`~simplernn_numba.interop.dask.predict` over Dask arrays.
"""

from .keras import from_keras, load_model, to_keras
from .onnx import to_onnx
from .saving import load, save
from .streaming import Stream, step
from .torch import from_torch, to_torch

__all__ = ["Stream", "from_keras", "from_torch", "load", "load_model", "save", "step", "to_keras", "to_onnx",
           "to_torch"]
