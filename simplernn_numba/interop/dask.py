"""Batch inference on Dask arrays, on one machine or a cluster (optional ``dask`` extra).

:func:`predict` maps the layer over batch chunks (``blockwise``, the general
form of ``map_blocks`` that lines the (batch, timesteps) mask up with the
inputs' first two axes): each task
runs the layer on one chunk of rows, on whichever worker Dask picks (threads,
processes or machines; the layer travels to the workers with the task graph).
Rows are independent, so the result equals one in-memory call up to float
rounding (the CPU kernel's path depends on the batch size, so a chunk and the
whole batch may round differently, by about 1e-7 in float32). Chunks along
time and features are merged first, because the recurrence needs whole
sequences. Stateful layers are refused: their state would depend on which
worker saw which chunk.

>>> import numpy as np
>>> import dask.array as da
>>> from simplernn_numba import SimpleRNN
>>> layer = SimpleRNN(4)
>>> x = np.random.default_rng(0).random((10, 6, 3), dtype=np.float32)
>>> y = predict(layer, da.from_array(x, chunks=(4, 6, 3)))
>>> y.chunks
((4, 4, 2), (4,))
>>> bool(np.allclose(y.compute(scheduler="synchronous"), layer(x), rtol=1e-6, atol=1e-6))
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from ..bidirectional import Bidirectional
from ..layer import SimpleRNN

if TYPE_CHECKING:
    import dask.array as da


def _output_units(layer) -> int:
    first = layer.forward_layer if isinstance(layer, Bidirectional) else layer
    if isinstance(layer, Bidirectional) and layer.merge_mode == "concat":
        return 2 * first.units
    return first.units


def _run_block(x_block, mask_block, layer):
    return layer(x_block, mask=mask_block)


def predict(layer: SimpleRNN | Bidirectional, inputs: da.Array,
            mask: ArrayLike | da.Array | None = None) -> da.Array:
    """Run ``layer`` over a Dask array of sequences, chunk by chunk along the batch axis.

    Parameters
    ----------
    layer : SimpleRNN or Bidirectional
        Built (or buildable from ``inputs``), not stateful, without
        ``return_state`` and (Bidirectional) with a merge mode, so that each
        chunk gives one array.
    inputs : dask.array.Array (batch, timesteps, features)
        Any chunking; time and features are rechunked to one chunk each.
    mask : dask or NumPy array (batch, timesteps) of bool, optional

    Returns
    -------
    dask.array.Array, lazy: (batch, timesteps, out) with ``return_sequences``,
    else (batch, out), chunked like ``inputs`` along the batch; ``out`` is the
    units (twice the units for a concat Bidirectional). Call ``.compute()``.
    """
    import dask.array as da

    if not isinstance(layer, (SimpleRNN, Bidirectional)):
        raise TypeError(f"Expected a SimpleRNN or Bidirectional layer; received {type(layer).__name__}.")
    if layer.stateful:
        raise ValueError(
            f"Layer {layer.name!r} is stateful; its state would depend on how chunks are spread over "
            "workers. Use a non-stateful layer (same weights) for batch inference."
        )
    if layer.return_state or (isinstance(layer, Bidirectional) and layer.merge_mode is None):
        raise ValueError(
            f"Layer {layer.name!r} returns several arrays (return_state or merge_mode=None); "
            "predict needs one output array."
        )
    if not isinstance(inputs, da.Array):
        raise TypeError(f"inputs must be a dask.array.Array; received {type(inputs).__name__}.")
    if inputs.ndim != 3:
        raise ValueError(
            f"inputs must be 3-D with shape (batch, timesteps, features); received shape {inputs.shape}."
        )
    dtype = np.dtype(layer.dtype)
    if not (layer.forward_layer if isinstance(layer, Bidirectional) else layer).built:
        layer.build((None, *inputs.shape[1:]))
    x = inputs.rechunk({1: -1, 2: -1})
    batch, steps, _ = x.shape
    if mask is not None:
        if mask.shape != (batch, steps):
            raise ValueError(f"mask must have shape {(batch, steps)}; received shape {mask.shape}.")
        mask = da.asarray(mask).rechunk((x.chunks[0], -1))
    units = _output_units(layer)
    out_index = "btu" if layer.return_sequences else "bu"
    arrays = [x, "btf"] + ([mask, "bt"] if mask is not None else [None, None])
    return da.blockwise(_run_block, out_index, *arrays, layer, None, new_axes={"u": units},
                        concatenate=True, dtype=dtype, meta=np.empty((0,) * len(out_index), dtype))
