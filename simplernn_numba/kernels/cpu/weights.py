"""The weights in the layouts the CPU kernels read, prepared once for a layer's weights.

Each layout is a few blocks of the weights stacked into rows, padded with zero columns to whole
tiles and starting on a cache line (:func:`.workspace.aligned_empty`: NumPy's large arrays start
16 bytes past one, so half of the 32-byte vector loads would straddle two lines):

- ``"fused"``: ``[kernel; recurrent_kernel]`` (F + U, U'): a step's product of ``[x_t, h]``;
- ``"recurrent_t"``: the recurrent kernel transposed (U, U'): the backward step's product;
- ``"panels"``: the column panels of the kernel, then of the recurrent kernel
  (:func:`.panel_products.panels`), (P * (F + U), width) for P panels;
- ``"recurrent_t_panels"``: the panels of the transposed recurrent kernel.

>>> import numpy as np
>>> w = prepared_weights(np.ones((2, 3)), 2 * np.ones((3, 3)), "fused", 4)
>>> w.shape, w[:, 3].tolist()
((5, 4), [0.0, 0.0, 0.0, 0.0, 0.0])
"""

from __future__ import annotations

import numpy as np

from .. import config
from .panel_products import panels
from .workspace import aligned_empty

LAYOUTS = {
    "fused": lambda kernel, recurrent: (kernel, recurrent),
    "recurrent_t": lambda kernel, recurrent: (recurrent.T,),
    "panels": lambda kernel, recurrent: (*panels(kernel), *panels(recurrent)),
    "recurrent_t_panels": lambda kernel, recurrent: panels(recurrent.T),
}

#: Prepared weights of read-only arrays that own their data (a layer's, which are replaced, never
#: modified): (id, id, layout, columns) -> (kernel, recurrent_kernel, result).
_PREPARED: dict = {}


def prepared_weights(kernel, recurrent_kernel, layout: str, columns: int | None = None) -> np.ndarray:
    """The weights in one of the :data:`LAYOUTS`, C-contiguous, with ``columns`` columns (zero
    padded; the widest block's width by default), cached for immutable weights (read-only arrays
    that own their data); arrays that are writeable or views are prepared afresh on every call.
    """
    key = (id(kernel), id(recurrent_kernel), layout, columns)
    hit = _PREPARED.get(key)
    immutable = not (kernel.flags.writeable or recurrent_kernel.flags.writeable)
    if hit is not None and hit[0] is kernel and hit[1] is recurrent_kernel and immutable:
        return hit[2]
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {tuple(LAYOUTS)}; received {layout!r}.")
    blocks = LAYOUTS[layout](kernel, recurrent_kernel)
    rows, units = sum(block.shape[0] for block in blocks), max(block.shape[1] for block in blocks)
    result = aligned_empty((rows, units if columns is None else columns), kernel.dtype)
    start = 0
    for block in blocks:
        result[start:start + block.shape[0], :block.shape[1]] = block
        result[start:start + block.shape[0], block.shape[1]:] = 0
        start += block.shape[0]
    if not immutable or kernel.base is not None or recurrent_kernel.base is not None:
        return result
    if len(_PREPARED) >= config.PREPARED_WEIGHTS_KEPT:
        _PREPARED.clear()
    _PREPARED[key] = (kernel, recurrent_kernel, result)
    return result
