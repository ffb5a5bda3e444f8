"""Timing: interleaved rounds of time-sliced blocks, and the sgemm roofline.

:func:`run` builds every implementation of a case, checks its output against ours,
then times them all in interleaved rounds so that load from other processes and the
host's changes of speed fall on all of them alike.

>>> from simplernn_numba.bench.cases import Case
>>> rows = run([Case(2, 3, 4, 5)], peers=("numpy",), rounds=1, progress=False)
>>> sorted(rows[0].timings)
['numpy', 'simplernn_numba']
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .cases import Case, Problem, assert_close, case_problem, tolerance
from .neighbour import BusyNeighbour
from .peers import BUILDERS, OURS, PEERS

#: How to install every peer, named in the note of a peer that is not installed.
INSTALL_PEERS = 'pip install -e ".[bench]"'


@dataclass
class Row:
    """Results for one case: median ms and first-call seconds per implementation."""

    case: Case
    timings: dict[str, float] = field(default_factory=dict)
    first_call: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    #: numpy sgemm 2048x2048 GFLOP/s timed in this case's rounds (``run(..., roofline=True)``)
    sgemm_gflops: float | None = None
    #: Number of timed calls per implementation.
    calls: dict[str, int] = field(default_factory=dict)
    #: Median ms per implementation with a busy neighbour (``run(..., neighbour=...)``).
    busy: dict[str, float] = field(default_factory=dict)
    #: Our CPU plan for the case (path and runs of rows; None where no CPU plan ran).
    plan: str | None = None


def median_seconds(fn: Callable[[], object], repeat: int, budget_s: float = 2.0) -> float:
    """Median wall time of ``fn()`` over ``repeat`` calls (fewer if ``budget_s`` runs out, >= 3)."""
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < repeat and (len(times) < 3 or time.perf_counter() < deadline):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


#: Seconds of consecutive calls one implementation gets per round of :func:`run`.
BLOCK_S = 0.05
#: Fewest rounds of :func:`run` an implementation is timed in (unless its budget runs out).
ROUNDS = 10


#: Longest wait (s) for the process to go quiet before a block (see :func:`_wait_until_idle`).
QUIET_WAIT_S = 0.5


def _wait_until_idle(limit_s: float = QUIET_WAIT_S, slice_s: float = 0.005) -> float:
    """Sleep until the process's other threads use under a tenth of a core; returns the wait.

    Thread pools keep spinning after a library's call returns (OpenBLAS for about
    0.1 s), and that takes cores from whichever implementation runs next, most of all
    from one that needs every core at once; the wait gives each block a quiet start.
    """
    start = time.perf_counter()
    while time.perf_counter() - start < limit_s:
        cpu = time.process_time()
        time.sleep(slice_s)
        if time.process_time() - cpu < 0.1 * slice_s:
            break
    return time.perf_counter() - start


def _block(fn: Callable[[], object]) -> list[float]:
    """Times of the consecutive calls of ``fn`` that fit in about :data:`BLOCK_S` (>= 1).

    The block starts once the process is idle (:func:`_wait_until_idle`). When a call is
    short enough for several per block, one untimed call goes first: it pays for what the
    previous implementation left behind (evicted caches, cold thread pools), which is not
    this implementation's cost. The block lasts :data:`BLOCK_S` however short the calls,
    so the slower calls right after the idle wait are a small share of a short call's times.
    """
    _wait_until_idle()
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    if first >= BLOCK_S / 2:
        return [first]
    times: list[float] = []
    end = time.perf_counter() + BLOCK_S
    while not times or time.perf_counter() < end:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


#: Size of the square float32 matrix product whose rate is the roofline.
SGEMM_N = 2048
#: The roofline's name in :func:`run`'s rounds (never a peer).
ROOFLINE = "sgemm"


def _sgemm(n: int = SGEMM_N) -> Callable[[], np.ndarray]:
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    return lambda: a @ a


def sgemm_gflops(n: int = SGEMM_N, repeat: int = 5) -> float:
    """GFLOP/s of NumPy's float32 matrix product on (n, n) @ (n, n): the roofline used here."""
    fn = _sgemm(n)
    fn()
    return 2 * n**3 / median_seconds(fn, repeat) / 1e9


def run(cases: Sequence[Case], peers: Sequence[str] = PEERS, repeat: int = 30,
        budget_s: float = 2.0, progress: bool = True, rounds: int = ROUNDS,
        builders: dict[str, Callable[[Problem, Case], Callable[[], np.ndarray]]] | None = None,
        tolerance: Callable[[Case], dict] | None = None, roofline: bool = False,
        neighbour: BusyNeighbour | None = None) -> list[Row]:
    """Time ours and each peer on every case; returns one :class:`Row` per case.

    ``builders`` maps implementation names to builders (default :data:`BUILDERS`,
    forward inference); another mode, such as a training step, is another such dict
    (:data:`simplernn_numba.bench.training.TRAIN_BUILDERS`), whose callables may return a
    tuple of arrays. ``tolerance(case)`` gives the ``rtol``/``atol`` of the check against
    ours (default: ``cases.tolerance(dtype, "peer")``; see :func:`~.cases.assert_close`).

    Every implementation is built, called once (first-call time, output check)
    and then timed in interleaved rounds, so that load from other processes and the
    host's changes of speed fall on all of them alike; in each round each
    implementation runs one block of consecutive calls (see :func:`_block`), and its
    time is the median of all its timed calls. An implementation leaves the rounds
    once it has been in ``rounds`` of them and has ``repeat`` timed calls, or once its
    calls add up to ``budget_s`` seconds and it has 3.
    A peer whose output differs from ours beyond float tolerance is reported in
    ``notes`` and not timed. With ``roofline``, NumPy's sgemm on 2048x2048 takes part
    in every case's rounds too, and its rate is the row's ``sgemm_gflops``: the
    roofline then moves with the machine's speed, as the timings do. With ``neighbour`` (a
    :class:`~.neighbour.BusyNeighbour`), each implementation's block in a round is followed by
    a block with the neighbour spinning, whose median is the row's ``busy`` time.
    """
    builders = BUILDERS if builders is None else builders
    tol = tolerance or _peer_tolerance
    if roofline:
        sgemm_fn = _sgemm()
        sgemm_fn()
    rows = []
    for case in cases:
        row = Row(case)
        problem = case_problem(case)
        expected = None
        ready: dict[str, Callable[[], np.ndarray]] = {}
        for name in (OURS, *peers):
            if progress:
                print(f"[{case.label}] {name} ...", end=" ", flush=True, file=sys.stderr)
            try:
                fn = builders[name](problem, case)
                start = time.perf_counter()
                out = fn()
                row.first_call[name] = time.perf_counter() - start
                if name == OURS:
                    row.plan = _our_plan()
                if expected is None:
                    expected = out
                else:
                    assert_close(out, expected, **tol(case))
                ready[name] = fn
                message = f"first call {row.first_call[name]:.3f} s"
            except ImportError as exc:
                row.notes[name] = f"not installed ({exc.name}; {INSTALL_PEERS})"
                message = row.notes[name]
            except NotImplementedError as exc:
                row.notes[name] = str(exc)
                message = row.notes[name]
            except AssertionError as exc:
                row.notes[name] = "output differs from ours: " + str(exc).strip().splitlines()[-1]
                message = row.notes[name]
            if progress:
                print(message, file=sys.stderr, flush=True)
        if roofline:
            ready[ROOFLINE] = sgemm_fn
        samples: dict[str, list[float]] = {name: [] for name in ready}
        busy: dict[str, list[float]] = {name: [] for name in ready if name != ROOFLINE}
        active, done = list(ready), 0
        while active:
            for name in active:
                samples[name] += _block(ready[name])
                if neighbour is not None and name in busy:
                    with neighbour.running():
                        busy[name] += _block(ready[name])
            done += 1
            active = [n for n in active if (done < rounds or len(samples[n]) < repeat)
                      and (len(samples[n]) < 3 or sum(samples[n]) < budget_s)]
        row.timings = {name: 1e3 * float(np.median(ts)) for name, ts in samples.items()}
        row.calls = {name: len(ts) for name, ts in samples.items() if name != ROOFLINE}
        row.busy = {name: 1e3 * float(np.median(ts)) for name, ts in busy.items() if ts}
        if roofline:
            row.sgemm_gflops = 2 * SGEMM_N**3 / row.timings.pop(ROOFLINE) / 1e6
        if progress:
            print(f"[{case.label}] median ms: " + ", ".join(
                f"{n} {t:.3f} ({row.calls[n]} calls)" for n, t in row.timings.items())
                + (f"; sgemm {row.sgemm_gflops:.1f} GFLOP/s" if row.sgemm_gflops else ""),
                file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def _our_plan() -> str | None:
    """Path and runs of this thread's last CPU plan (our first call's), e.g. "panels, 8 runs"."""
    from ..kernels.cpu import last_plan

    plan = last_plan()
    return None if plan is None else f"{plan.path}, {plan.runs} run{'s' * (plan.runs > 1)}"


def _peer_tolerance(case: Case) -> dict:
    rtol, atol = tolerance(case.dtype, "peer")
    return dict(rtol=rtol, atol=atol)
