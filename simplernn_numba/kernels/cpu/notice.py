"""Once per process, that a call compiles kernels.

A call whose kernels are neither compiled in this process nor in Numba's on-disk cache waits
while Numba compiles them (seconds per variant, once per machine). The first time that happens
in a process, the ``simplernn_numba`` logger says so at WARNING level, which Python prints to
stderr when logging is not configured. Silence it with::

    import logging
    logging.getLogger("simplernn_numba").setLevel(logging.ERROR)

A log record, not a ``warnings`` warning: under ``-W error`` a warning would become an
exception inside Numba's compiler and fail the call. ``python -m simplernn_numba compile``
compiles the common variants ahead of time.
"""

from __future__ import annotations

import logging

import numba
from numba.core import event

from .last_call import description

LOGGER = logging.getLogger("simplernn_numba")
_PACKAGE = __name__.rsplit(".", 2)[0]  # simplernn_numba.kernels


def _cache_location() -> str:
    return numba.config.CACHE_DIR or "__pycache__ folders beside the package's sources"


class _Listener(event.Listener):
    """Logs the first compilation of one of the package's kernels in this process."""

    announced = False

    def on_start(self, ev: event.Event) -> None:
        if _Listener.announced:
            return
        dispatcher = ev.data.get("dispatcher")
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
        if not module.startswith(_PACKAGE):
            return
        _Listener.announced = True
        plan, dtype, activation = description()
        what = f"{dtype} {activation}, plan {plan.path}" if plan else "a new variant"
        LOGGER.warning(
            "simplernn_numba is compiling kernels for this call (%s): once per machine and "
            "variant, then cached in %s. `python -m simplernn_numba compile` compiles the "
            "common variants ahead of time.", what, _cache_location())

    def on_end(self, ev: event.Event) -> None:
        pass


event.register("numba:compile", _Listener())
