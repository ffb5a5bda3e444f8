"""A busy neighbour: another process spinning on one core, for timings under load.

Libraries run next to other work (pipelines, notebooks, cloud VMs that share their cores). A
:class:`BusyNeighbour` is a separate Python process that spins on one core (the last one this
process may run on) from its start until :meth:`BusyNeighbour.close`, paused (``SIGSTOP``)
except inside :meth:`BusyNeighbour.running`, so that the benchmark alternates quiet blocks and
blocks with the neighbour in the same rounds (:func:`.timing.run`). POSIX only.

>>> with BusyNeighbour() as neighbour:
...     with neighbour.running():
...         neighbour.spinning()
True
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

#: Seconds the neighbour spins before a busy block starts, so that the scheduler has placed it.
SETTLE_S = 0.005


def ideal_ratio(cores: int) -> float:
    """Time with a neighbour over quiet time for work spread evenly over ``cores`` cores when one
    of them is shared half the time with the neighbour: ``cores / (cores - 0.5)`` (1.33 on two).

    >>> round(ideal_ratio(2), 2)
    1.33
    """
    return cores / (cores - 0.5)


class BusyNeighbour:
    """A process spinning on one core: ``core`` (default: the last core this process may use),
    paused until :meth:`running`. Close it (or use it as a context manager) to end it."""

    def __init__(self, core: int | None = None):
        if not hasattr(signal, "SIGSTOP"):
            raise NotImplementedError("a busy neighbour needs POSIX signals (SIGSTOP/SIGCONT)")
        allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        self.core = allowed[-1] if core is None and allowed else core
        self._process = subprocess.Popen([sys.executable, "-c", "while True:\n    pass"],
                                         stdin=subprocess.DEVNULL)
        if self.core is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(self._process.pid, {self.core})
        self._stop()
        self._running = False

    def _stop(self) -> None:
        """Pause the neighbour and wait until it has stopped."""
        os.kill(self._process.pid, signal.SIGSTOP)
        os.waitpid(self._process.pid, os.WUNTRACED)

    def spinning(self) -> bool:
        """Whether the neighbour is spinning now (inside :meth:`running`)."""
        return self._running and self._process.poll() is None

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Let the neighbour spin inside the block (it is paused again after it)."""
        os.kill(self._process.pid, signal.SIGCONT)
        self._running = True
        try:
            time.sleep(SETTLE_S)
            yield
        finally:
            self._running = False
            self._stop()

    def close(self) -> None:
        """End the neighbour's process."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()

    def __enter__(self) -> BusyNeighbour:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
