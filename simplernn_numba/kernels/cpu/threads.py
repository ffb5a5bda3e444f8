"""Runs of batch rows over several threads: the calling thread and a pool of worker threads call
the same compiled kernel, each on the next run not yet taken.

The kernels a plan splits into runs are compiled ``nogil``; :func:`parallel` hands their runs out
one at a time, so a thread whose core is busy with another process takes fewer of them, and a
run's result does not depend on which thread ran it. The thread count is Numba's
(``numba.get_num_threads()``, so ``numba.set_num_threads`` and ``NUMBA_NUM_THREADS`` apply).

A ``prange`` loop would do the same, but a ``parallel=True`` kernel compiles again, inside its
loop body, everything the serial kernel it calls compiles (measured: 2.9 s more for the panels
path's first call); threads calling the one compiled kernel compile nothing more. They also use
no Numba threading layer, so concurrent calls from several Python threads are safe whatever layer
Numba has.

>>> seen = []
>>> parallel(seen.append, 3)
>>> sorted(seen)
[0, 1, 2]
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
from collections.abc import Callable

import numba

_lock = threading.Lock()
_tasks: queue.SimpleQueue = queue.SimpleQueue()
_workers: list[threading.Thread] = []


def _work(tasks: queue.SimpleQueue) -> None:
    while True:
        tasks.get()()


def _start_workers(count: int) -> None:
    """At least ``count`` worker threads (daemons: they never hold up the interpreter's exit)."""
    with _lock:
        while len(_workers) < count:
            worker = threading.Thread(target=_work, args=(_tasks,), daemon=True,
                                      name=f"simplernn_numba-{len(_workers)}")
            worker.start()
            _workers.append(worker)


def _forget_workers() -> None:
    """In a forked child the parent's workers do not exist: start afresh."""
    global _tasks, _lock
    _lock = threading.Lock()
    _tasks = queue.SimpleQueue()
    _workers.clear()


os.register_at_fork(after_in_child=_forget_workers)


def parallel(task: Callable[[int], None], runs: int) -> None:
    """``task(run)`` for each run in ``range(runs)``, on up to ``numba.get_num_threads()``
    threads (the calling thread one of them); the first exception a task raises is re-raised
    after every thread has stopped."""
    threads = min(numba.get_num_threads(), runs)
    if threads <= 1:
        for run in range(runs):
            task(run)
        return
    _start_workers(threads - 1)
    counter = itertools.count()
    errors: list[BaseException] = []
    done: queue.SimpleQueue = queue.SimpleQueue()

    def drain() -> None:
        try:
            while (run := next(counter)) < runs:
                task(run)
        except BaseException as error:  # noqa: BLE001 - re-raised on the calling thread
            errors.append(error)

    def job() -> None:
        drain()
        done.put(None)

    for _ in range(threads - 1):
        _tasks.put(job)
    drain()
    for _ in range(threads - 1):
        done.get()
    if errors:
        raise errors[0]
