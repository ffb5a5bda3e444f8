"""Once per variant a process compiles, that a call compiles kernels.

A call whose kernels are neither compiled in this process nor in Numba's on-disk cache waits
while Numba compiles them (seconds per variant, once per machine). Each time a process starts
compiling a variant it has not compiled before (a call's plan, dtype and activation; or, outside
a layer call, a kernel and its argument types), the ``simplernn_numba`` logger says so at
WARNING level, which Python prints to stderr when logging is not configured. Silence it with::

    import logging
    logging.getLogger("simplernn_numba").setLevel(logging.ERROR)

A log record, not a ``warnings`` warning: under ``-W error`` a warning would become an
exception inside Numba's compiler and fail the call. ``python -m simplernn_numba compile``
compiles the common variants ahead of time.
"""

from __future__ import annotations

import contextlib
import logging
import threading

import numba
from numba.core import event

from .last_call import description

LOGGER = logging.getLogger("simplernn_numba")
_PACKAGE = __name__.rsplit(".", 2)[0]  # simplernn_numba.kernels


def _cache_location() -> str:
    return numba.config.CACHE_DIR or "__pycache__ folders beside the package's sources"


#: The advice the notice ends with (none while the compile command runs).
_ADVICE = " `python -m simplernn_numba compile` compiles the common variants ahead of time."
_advice = threading.local()


@contextlib.contextmanager
def compiling_ahead():
    """While the compile command compiles: the notice leaves out the advice to run it."""
    _advice.off = True
    try:
        yield
    finally:
        _advice.off = False


class _Listener(event.Listener):
    """Logs the first compilation of each variant in this process (see the module docstring)."""

    def __init__(self):
        self.announced: set = set()

    def on_start(self, ev: event.Event) -> None:
        dispatcher = ev.data.get("dispatcher")
        function = getattr(dispatcher, "py_func", None)
        if not (getattr(function, "__module__", "") or "").startswith(_PACKAGE):
            return
        plan, dtype, activation = call = description()
        key = call if plan else (function.__qualname__, str(ev.data.get("args")))
        if key in self.announced:
            return
        self.announced.add(key)
        what = f"{dtype} {activation}, plan {plan.path}" if plan else "a new variant"
        LOGGER.warning(
            "simplernn_numba is compiling kernels for this call (%s): once per machine and "
            "variant, then cached in %s.%s", what, _cache_location(),
            "" if getattr(_advice, "off", False) else _ADVICE)

    def on_end(self, ev: event.Event) -> None:
        pass


event.register("numba:compile", _Listener())
