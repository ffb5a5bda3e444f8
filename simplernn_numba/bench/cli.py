"""Command line: ``python -m simplernn_numba.bench [--train] [--neighbour | --per-step] [options]``.

Times our forward pass (or, with ``--train``, a training step) and every installed
peer on the same weights and inputs, and writes ``bench.md`` and ``bench.png``
(``bench_train.md`` and ``bench_train.png``); ``--help`` lists the options.
``--neighbour`` times every implementation quiet and with a busy neighbour (a process spinning
on one core) in the same rounds and writes ``bench_neighbour.md``; ``--per-step`` times one or
two sequences at a time on one thread against the FMA bound and writes ``bench_per_step.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import training
from .cases import NEIGHBOUR_GRID, PER_STEP_GRID, Case, default_cases, parse_case
from .neighbour import BusyNeighbour
from .peers import BUILDERS, PEERS, THREADS_ENV
from .report import markdown, neighbour_markdown, per_step_markdown, plot, startup_times
from .timing import BLOCK_S, INSTALL_PEERS, ROUNDS, Row, run, sgemm_gflops


def thread_env(threads: int) -> dict[str, str]:
    """Environment limiting every library in this process to ``threads`` threads."""
    n = str(threads)
    env = {THREADS_ENV: n, "OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n,
           "NUMBA_NUM_THREADS": n}
    if threads == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    return env


def main(argv: Sequence[str] | None = None) -> list[Row]:
    """Run the benchmark with the command-line arguments ``argv``; returns the rows."""
    parser = argparse.ArgumentParser(
        prog="python -m simplernn_numba.bench",
        description="Benchmark the SimpleRNN layer against NumPy, PyTorch, Keras, ONNX Runtime, JAX "
                    "and OpenVINO (peers that are not installed are skipped; "
                    f"{INSTALL_PEERS} installs them).")
    parser.add_argument("--case", action="append", type=parse_case,
                        help="B,T,F,U[,float64][,masked]; repeatable (default: the grid + "
                             "float64 + masked cases)")
    parser.add_argument("--skip-large", action="store_true", help="drop cases above 1 GFLOP")
    parser.add_argument("--peers", default=None,
                        help=f"comma-separated subset of {','.join(PEERS)} (or 'none'); with "
                             "--train, of numpy,torch,jax (default: all)")
    parser.add_argument("--train", action="store_true",
                        help="time a training step (forward + backward, gradients checked) instead "
                             "of the forward pass; writes bench_train.md and bench_train.png")
    parser.add_argument("--repeat", type=int, default=30,
                        help="fewest timed calls per implementation and case")
    parser.add_argument("--rounds", type=int, default=ROUNDS,
                        help="fewest interleaved rounds per implementation and case (each round "
                             f"times a block of about {BLOCK_S * 1e3:.0f} ms of calls)")
    parser.add_argument("--budget", type=float, default=2.0,
                        help="seconds per measurement before stopping early (>= 3 calls)")
    parser.add_argument("--out-dir", type=Path, default=Path("."),
                        help="where bench.md and bench.png go")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--no-roofline", action="store_true", help="skip the sgemm measurement")
    parser.add_argument("--threads", type=int, default=None,
                        help="limit every implementation (BLAS, Numba, torch, TF, ORT, XLA) to N "
                             "threads; default: each library's own default (all cores)")
    parser.add_argument("--startup", action="store_true",
                        help="also time import + first call with a cold and a warm Numba cache")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--neighbour", action="store_true",
                      help="time each implementation quiet and with a busy neighbour (a process "
                           "spinning on one core) in the same rounds; writes bench_neighbour.md "
                           "(default cases: " + " ".join(",".join(map(str, c)) for c in NEIGHBOUR_GRID)
                           + ")")
    mode.add_argument("--per-step", action="store_true",
                      help="one or two sequences at a time on one thread (implies --threads 1): "
                           "ns a step and ours against the FMA bound 2BTU(F+U) at the one-thread "
                           "sgemm rate of the same rounds; writes bench_per_step.md (default "
                           "cases: " + " ".join(",".join(map(str, c)) for c in PER_STEP_GRID) + ")")
    args = parser.parse_args(argv)
    if args.per_step:
        if args.no_roofline:
            parser.error("--per-step needs the sgemm rate (drop --no-roofline)")
        args.threads = 1
    if args.threads and os.environ.get(THREADS_ENV) != str(args.threads):
        os.environ.update(thread_env(args.threads))
        argv = sys.argv[1:] if argv is None else list(argv)
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, "-m", "simplernn_numba.bench", *argv])
    grid = NEIGHBOUR_GRID if args.neighbour else PER_STEP_GRID if args.per_step else None
    cases = args.case or ([Case(*shape) for shape in grid] if grid else default_cases())
    if args.skip_large:
        cases = [c for c in cases if c.flops <= 1e9]
    builders, tolerance, flops_factor, stem, known = BUILDERS, None, 1, "bench", PEERS
    if args.train:
        builders, tolerance, flops_factor = (training.TRAIN_BUILDERS, training.tolerance,
                                             training.FLOPS_FACTOR)
        stem, known = "bench_train", training.PEERS
    peers_arg = ",".join(known) if args.peers is None else args.peers
    peers = [] if peers_arg == "none" else [p for p in peers_arg.split(",") if p]
    unknown = set(peers) - set(known)
    if unknown:
        parser.error(f"unknown peers {sorted(unknown)}; choose from {known}")
    gflops = None
    if not args.no_roofline:
        gflops = sgemm_gflops()
        print(f"numpy sgemm 2048x2048: {gflops:.1f} GFLOP/s", file=sys.stderr)
    load_before = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        neighbour = stack.enter_context(BusyNeighbour()) if args.neighbour else None
        rows = run(cases, peers, args.repeat, args.budget, rounds=args.rounds, builders=builders,
                   tolerance=tolerance, roofline=gflops is not None, neighbour=neighbour)
    if args.neighbour:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        text, stem = neighbour_markdown(rows, cores or 1), stem + "_neighbour"
    elif args.per_step:
        text, stem = per_step_markdown(rows), stem + "_per_step"
    else:
        text = markdown(rows, gflops, flops_factor)
    text += (f"\nTimings: each implementation in at least {args.rounds} interleaved rounds of "
             f"about {BLOCK_S * 1e3:.0f} ms of consecutive calls (>= {args.repeat} calls; fewer "
             f"once its calls add up to {args.budget:g} s); the median over all its timed calls.\n")
    threads = os.environ.get(THREADS_ENV)
    text += f"\nThreads: {threads + ' per library' if threads else 'each library default'}.\n"
    text += (f"\nLoad average (1 min) before / after the timings: {load_before:.2f} / "
             f"{os.getloadavg()[0]:.2f}.\n")
    if args.train:
        text += ("\nTraining step: ours is `layer(x, training=True)` + `layer.backward(d_output)`; "
                 "gradients (inputs, kernel, recurrent_kernel, bias) checked against ours; "
                 f"FLOPs counted as {flops_factor}x the forward pass.\n")
    if gflops:
        text += (f"\nRoofline: numpy sgemm on 2048x2048, timed in each case's interleaved rounds "
                 f"(column 'sgemm GFLOP/s'); {gflops:.1f} GFLOP/s before the cases.\n")
    if args.startup:
        lines = [f"- {k}: import {i:.2f} s, first call {c:.2f} s"
                 for k, (i, c) in startup_times().items()]
        text += "\nImport + first call in a fresh interpreter:\n" + "\n".join(lines) + "\n"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{stem}.md").write_text(text)
    print(text)
    if not (args.no_plot or args.neighbour or args.per_step):
        try:
            plot(rows, args.out_dir / f"{stem}.png", "training step" if args.train else "forward")
        except ImportError:
            print(f"matplotlib is not installed ({INSTALL_PEERS}): no plot", file=sys.stderr)
    return rows
