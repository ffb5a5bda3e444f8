"""Numba threading layer selection and the lock that keeps parallel kernels thread-safe.

Numba runs ``prange`` loops on one of three threading layers, tried in the
order tbb, omp, workqueue. ``tbb`` is thread-safe and fork-safe and has the
lowest per-call overhead we measured; ``omp`` (GNU OpenMP on Linux) is
thread-safe; ``workqueue`` aborts the process when two Python threads launch
parallel kernels at the same time.

At import, :func:`make_pip_tbb_loadable` lets Numba find a ``tbb`` installed by
pip into a virtual environment (its ``libtbb.so.12`` lives in ``<prefix>/lib``,
which the dynamic loader does not search). An explicit ``NUMBA_THREADING_LAYER``
is respected. When Numba ends up on ``workqueue`` (no tbb and no libgomp),
:func:`parallel_section` serialises our parallel kernel launches with a process
lock, so concurrent calls stay safe, only slower.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import sys
import threading
import weakref

import numba

#: Held around every parallel kernel launch while Numba runs on ``workqueue``.
WORKQUEUE_LOCK = threading.Lock()
_layer: str | None = None


def make_pip_tbb_loadable() -> bool:
    """Preload a pip-installed ``libtbb.so.12`` (Linux) so Numba's tbb layer can load.

    Returns True when libtbb is loadable afterwards. Does nothing where the
    system loader already finds it, and nothing outside Linux.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        ctypes.CDLL("libtbb.so.12")
        return True
    except OSError:
        pass
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix, os.environ.get("CONDA_PREFIX", ""))):
        path = os.path.join(prefix, "lib", "libtbb.so.12")
        if prefix and os.path.exists(path):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                return True
            except OSError:
                return False
    return False


def threading_layer() -> str | None:
    """The layer Numba is running on, or None before the first parallel launch."""
    global _layer
    if _layer is None:
        try:
            _layer = numba.threading_layer()
        except ValueError:
            return None
    return _layer


@contextlib.contextmanager
def parallel_section():
    """Context for one parallel kernel launch: ``prange`` iterations handed out one at a time,
    and the workqueue lock when needed.

    Numba's default gives each thread an equal share of the iterations up front, so a thread
    whose core is busy with another process holds up the launch while the other waits. With a
    chunk size of 1 (thread-local, restored afterwards) tbb hands the next iteration (a run of
    batch rows) to whichever thread comes free: measured with one slow iteration of eight on two
    threads, the other thread took seven. Results do not depend on which thread runs what.
    Before Numba's first launch the layer is unknown, so that launch takes the lock.
    """
    lock = contextlib.nullcontext() if threading_layer() in ("tbb", "omp") else WORKQUEUE_LOCK
    with lock:
        previous = numba.set_parallel_chunksize(1)
        try:
            yield
        finally:
            numba.set_parallel_chunksize(previous)


# ---------------------------------------------------------------- per-object locks (stateful layers)
_OBJECT_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_OBJECT_LOCKS_GUARD = threading.Lock()


def object_lock(obj) -> threading.RLock:
    """The re-entrant lock of ``obj`` (created on first use, freed with ``obj``).

    Kept outside the object so that layers stay picklable and copyable.
    """
    with _OBJECT_LOCKS_GUARD:
        lock = _OBJECT_LOCKS.get(obj)
        if lock is None:
            lock = _OBJECT_LOCKS[obj] = threading.RLock()
        return lock


def synchronized(method):
    """Decorate a method so that calls on one object run one at a time."""

    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with object_lock(self):
            return method(self, *args, **kwargs)

    return locked
