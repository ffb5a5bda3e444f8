"""Reporting: the Markdown table, the bar chart, and import + first-call times.

>>> from simplernn_numba.bench.cases import Case
>>> from simplernn_numba.bench.timing import Row
>>> print(markdown([Row(Case(2, 3, 4, 5), timings={"simplernn_numba": 0.01, "numpy": 0.03})]).splitlines()[2])
| 2,3,4,5 | 0.010 | 0.030 (3.00x) | numpy 0.030 | 3.00x | 0.1 |
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from .peers import OURS
from .timing import Row


def markdown(rows: Sequence[Row], gflops: float | None = None, flops_factor: int = 1) -> str:
    """Markdown table: median ms per implementation, our speed-up over each, GFLOP/s, % roofline.

    ``flops_factor`` scales :attr:`Case.flops` (3 for a forward + backward training step).
    The roofline of a row is its own ``sgemm_gflops`` when it has one, else ``gflops``.
    """
    names = [OURS] + list(dict.fromkeys(n for r in rows for n in (*r.timings, *r.notes) if n != OURS))
    head = ["B,T,F,U", *[f"{n} ms" for n in names], "best peer", "speed-up vs best",
            "ours GFLOP/s"]
    roofline = bool(gflops) or any(r.sgemm_gflops for r in rows)
    if roofline:
        head += ["sgemm GFLOP/s", "sgemm roofline ms", "% of roofline"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        ours = row.timings.get(OURS)
        cells = [row.case.label]
        for n in names:
            if n in row.timings:
                ms = row.timings[n]
                ratio = "" if n == OURS or ours is None else f" ({ms / ours:.2f}x)"
                cells.append(f"{ms:.3f}{ratio}")
            else:
                cells.append("n/a")
        peers = {n: t for n, t in row.timings.items() if n != OURS}
        if peers and ours:
            best = min(peers, key=peers.get)
            cells += [f"{best} {peers[best]:.3f}", f"{peers[best] / ours:.2f}x"]
        else:
            cells += ["n/a", "n/a"]
        flops = flops_factor * row.case.flops
        cells.append(f"{flops / ours / 1e6:.1f}" if ours else "n/a")
        rate = row.sgemm_gflops or gflops
        if roofline and rate:
            roof = flops / rate / 1e6
            cells += [f"{rate:.0f}", f"{roof:.3f}", f"{100 * roof / ours:.0f}%" if ours else "n/a"]
        elif roofline:
            cells += ["n/a"] * 3
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Cells: median ms per call (warm); in brackets, that peer's time / ours "
                 "(> 1 means we are faster).")
    notes = sorted({f"{n}: {msg}" for r in rows for n, msg in r.notes.items()})
    if notes:
        lines += ["", "Skipped:"] + [f"- {n}" for n in notes]
    first = [f"{r.case.label}: " + ", ".join(f"{n} {s:.2f}" for n, s in r.first_call.items())
             for r in rows]
    lines += ["", "First call (s, compilation/tracing, excluded above):"] + [f"- {f}" for f in first]
    return "\n".join(lines) + "\n"


def _names(rows: Sequence[Row], field: str) -> list[str]:
    return [OURS] + list(dict.fromkeys(n for r in rows for n in getattr(r, field) if n != OURS))


def neighbour_markdown(rows: Sequence[Row], cores: int) -> str:
    """Markdown table of each implementation's median quiet and with a busy neighbour (a process
    spinning on one of ``cores`` cores), and their ratio, with our plan.

    >>> from simplernn_numba.bench.cases import Case
    >>> row = Row(Case(2, 3, 4, 5), timings={OURS: 1.0}, busy={OURS: 1.5}, plan="panels, 8 runs")
    >>> print(neighbour_markdown([row], 2).splitlines()[2])
    | 2,3,4,5 | panels, 8 runs | 1.000 / 1.500 (1.50x) |
    """
    names = _names(rows, "busy")
    head = ["B,T,F,U", "our plan", *[f"{n} quiet / busy ms (ratio)" for n in names]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row.case.label, row.plan or "n/a"]
        for n in names:
            quiet, busy = row.timings.get(n), row.busy.get(n)
            cells.append(f"{quiet:.3f} / {busy:.3f} ({busy / quiet:.2f}x)" if quiet and busy
                         else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Busy: another process spinning on one of the {cores} cores in every other "
              f"block of the same rounds. With one core shared half the time and the work spread "
              f"evenly, the ideal ratio is {cores / (cores - 0.5):.2f}x."]
    return "\n".join(lines) + "\n"


def per_step_markdown(rows: Sequence[Row]) -> str:
    """Markdown table of time per step (ns) per implementation and ours against the FMA bound:
    ``2 B T U (F + U)`` FLOPs (:attr:`Case.flops`) at the row's sgemm rate, a step's share of it,
    and ours as a percentage of it.

    >>> from simplernn_numba.bench.cases import Case
    >>> row = Row(Case(1, 1000, 16, 64), timings={OURS: 0.2}, sgemm_gflops=100.0)
    >>> print(per_step_markdown([row]).splitlines()[2])
    | 1,1000,16,64 | 200.0 | 100 | 102.4 | 51% |
    """
    names = _names(rows, "timings")
    head = ["B,T,F,U", *[f"{n} ns/step" for n in names], "sgemm GFLOP/s", "FMA bound ns/step",
            "ours % of bound"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        steps = row.case.steps
        cells = [row.case.label]
        cells += [f"{1e6 * row.timings[n] / steps:.1f}" if n in row.timings else "n/a" for n in names]
        ours, rate = row.timings.get(OURS), row.sgemm_gflops
        if rate:
            bound = row.case.flops / rate / steps  # ns a step
            cells += [f"{rate:.0f}", f"{bound:.1f}",
                      f"{100 * bound / (1e6 * ours / steps):.0f}%" if ours else "n/a"]
        else:
            cells += ["n/a"] * 3
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "FMA bound: the case's FLOPs, 2 B T U (F + U), at the sgemm rate of the same "
              "rounds (every library limited to one thread, so the rate is one core's)."]
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[Row], path: Path, what: str = "forward") -> None:
    """Grouped bar chart of median ms (log scale) per case and implementation.

    ``what`` names the timed call in the labels ("forward" or "training step").
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [OURS] + list(dict.fromkeys(n for r in rows for n in r.timings if n != OURS))
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for i, name in enumerate(names):
        xs = [j + i * width for j, r in enumerate(rows) if name in r.timings]
        ys = [r.timings[name] for r in rows if name in r.timings]
        ax.bar(xs, ys, width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(rows))])
    ax.set_xticklabels([r.case.label.replace(" ", "\n") for r in rows], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel(f"median ms per {what} call (lower is better)")
    ax.set_title(f"SimpleRNN {what} (tanh, return_sequences=True) by B,T,F,U; float32 unless noted")
    ax.legend(fontsize=8, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


_STARTUP_SCRIPT = """
import time
start = time.perf_counter()
import numpy as np
from simplernn_numba import SimpleRNN
imported = time.perf_counter()
SimpleRNN(4, return_sequences=True)(np.ones((32, 10, 8), np.float32))
print(imported - start, time.perf_counter() - imported)
"""


def startup_times() -> dict[str, tuple[float, float]]:
    """(import s, first call s) in fresh interpreters with a cold, then warm, Numba cache."""
    results = {}
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as cache:
        env["NUMBA_CACHE_DIR"] = cache
        for label in ("cold cache", "warm cache"):
            out = subprocess.run([sys.executable, "-c", _STARTUP_SCRIPT], env=env, check=True,
                                 capture_output=True, text=True).stdout.split()
            results[label] = (float(out[0]), float(out[1]))
    return results
