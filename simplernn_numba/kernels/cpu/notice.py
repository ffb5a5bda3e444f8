"""What a call tells: its plan (:func:`last_plan`) and, once per process, that it compiles.

A call whose kernels are neither compiled in this process nor in Numba's on-disk cache waits
while Numba compiles them (seconds per variant, once per machine). The first time that happens
in a process, a :class:`CompileWarning` says so; silence it with the ``warnings`` module::

    import warnings
    from simplernn_numba.kernels.cpu import CompileWarning
    warnings.simplefilter("ignore", CompileWarning)

``python -m simplernn_numba compile`` compiles the common variants ahead of time.
"""

from __future__ import annotations

import sys
import threading
import warnings

import numba
from numba.core import event

_PACKAGE = __name__.rsplit(".", 2)[0]  # simplernn_numba.kernels
_call = threading.local()


class CompileWarning(UserWarning):
    """A call is compiling kernels (once per machine and variant; then cached)."""


def about_to_run(plan, dtype, activation) -> None:
    """Name the call that runs next on this thread: for :func:`last_plan`, and for the notice
    should it compile."""
    _call.description = (plan, dtype, activation)


def last_plan():
    """The plan (:class:`.plan.Plan`) of this thread's last CPU call, forward or backward (None
    before one)."""
    description = getattr(_call, "description", None)
    return None if description is None else description[0]


def _cache_location() -> str:
    return numba.config.CACHE_DIR or "__pycache__ folders beside the package's sources"


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside Numba and this package (the user's call)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] in (
            "numba", "simplernn_numba", "contextlib", "functools"):
        frame, level = frame.f_back, level + 1
    return level


class _Listener(event.Listener):
    """Warns at the first compilation of one of the package's kernels in this process."""

    announced = False

    def on_start(self, ev: event.Event) -> None:
        if _Listener.announced:
            return
        dispatcher = ev.data.get("dispatcher")
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
        if not module.startswith(_PACKAGE):
            return
        _Listener.announced = True
        plan, dtype, activation = getattr(_call, "description", (None, None, None))
        what = f"{dtype} {activation}, plan {plan.path}" if plan else "a new variant"
        warnings.warn(
            f"simplernn_numba is compiling kernels for this call ({what}); "
            f"it happens once per machine and variant, compiled code is cached in "
            f"{_cache_location()}. `python -m simplernn_numba compile` compiles the common "
            "variants ahead of time.", CompileWarning, stacklevel=_caller_level())

    def on_end(self, ev: event.Event) -> None:
        pass


event.register("numba:compile", _Listener())
