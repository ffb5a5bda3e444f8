"""GPU benchmark: our CUDA kernels against torch.nn.RNN on CUDA (cuDNN) and our CPU kernels.

float32, tanh, return_sequences=True, batch-major (B, T, F). Inputs and weights
already on the GPU for the GPU rows (the Layer caches weights there). Each shape runs
both kernel choices in the same process: the register-resident plans and the rows /
persistent / per-step choice without them, forward (median wall ms, CUDA-event GPU ms,
Python µs per call) and a training step (forward + backward), against cuDNN with TF32
on (torch's default) and off. Then per-step slopes at T = 100, 1000, 4000. Shapes: the
README's GPU grid, batch 1-8 cases with U <= 128, larger U at small batch. Writes a
Markdown report to ``--out`` (default ``$OUT/gpu_bench.md`` when ``OUT`` is set), rewritten
after every shape, and to stdout. Exits 0 with a message when no GPU is usable.

    python benchmarks/gpu_bench.py [--budget-s 240] [--out report.md] [--no-persistent] [--quick]
    python benchmarks/gpu_bench.py --probe   # persistent, rows and registers against per-step
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import numpy as np

from simplernn_numba.bench.cases import Case, case_problem
from simplernn_numba.bench.peers import torch_rnn
from simplernn_numba.bench.timing import median_seconds
from simplernn_numba.kernels import config
from simplernn_numba.kernels.device_arrays import simulated

ANCHORS = [(32, 10, 8, 4), (1, 1000, 16, 64), (64, 100, 128, 128), (16, 500, 32, 32),
           (128, 200, 512, 512)]
SMALL_BATCH = [(1, 200, 64, 256), (4, 200, 64, 256), (8, 200, 64, 256), (1, 100, 128, 512),
               (8, 100, 128, 512), (2, 1000, 32, 128)]
#: Batch 1-8 with U <= 128, where the register-resident plans run.
REGISTERS = [(1, 500, 32, 32), (2, 500, 32, 64), (4, 500, 32, 128), (8, 500, 64, 128), (8, 200, 16, 64)]


def median_ms(fn, sync, min_time=0.3, max_reps=30) -> float:
    """Median wall time of ``fn`` in ms, ``sync`` after each call (after one warm-up call): the
    package's :func:`~simplernn_numba.bench.timing.median_seconds`."""
    fn()
    sync()
    return median_seconds(lambda: (fn(), sync()), max_reps, min_time) * 1e3


def queued_ms(fn, sync, calls=20) -> float:
    """Milliseconds per call over ``calls`` calls queued without synchronising in between: the
    GPU's time per call when it exceeds the host's (else the host's)."""
    fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    sync()
    return (time.perf_counter() - t0) / calls * 1e3


def torch_cuda():
    try:
        import torch
    except ImportError:
        return None
    return torch if torch.cuda.is_available() else None


def event_ms(fn, calls=20) -> float:
    """GPU milliseconds per call between two CUDA events around ``calls`` queued calls (after a
    warm-up): the device's time per call when it exceeds the host's, else the host's."""
    from numba import cuda

    fn()
    cuda.synchronize()
    start, end = cuda.event(), cuda.event()
    start.record()
    for _ in range(calls):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / calls


def host_us(fn, calls=50) -> float:
    """Microseconds of Python per call: ``calls`` calls queued without synchronising (the GPU
    keeps up at small shapes, so this is the host's time)."""
    from numba import cuda

    fn()
    cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    elapsed = time.perf_counter() - t0
    cuda.synchronize()
    return elapsed / calls * 1e6


def _problem(shape):
    """``(x, kernel, recurrent_kernel, bias, initial_state)`` of the benchmark case ``shape``
    (float32, :func:`~simplernn_numba.bench.cases.case_problem`)."""
    return case_problem(Case(*shape)).arrays()


def _torch_rnn(shape):
    """``torch.nn.RNN`` on the GPU holding the weights of :func:`_problem` ``(shape)`` (the package's
    torch peer, :func:`~simplernn_numba.bench.peers.torch_rnn`)."""
    case = Case(*shape)
    return torch_rnn(case_problem(case), case).cuda()


#: The kernel choices compared: the register-resident plans (where they apply) and the choice
#: among the rows / persistent / per-step paths without them.
MODES = {"registers": dict(CUDA_REGISTERS=True), "shared_memory": dict(CUDA_REGISTERS=False)}


def bench_shape(shape, kernels, cpu, torch, train: bool, persistent: bool) -> dict:
    """One row of the table: both modes and torch at ``shape`` (float32, tanh, sequences)."""
    from numba import cuda

    from simplernn_numba import activations
    from simplernn_numba.kernels.cuda import plan as plans

    batch, steps, features, units = shape
    arrays = _problem(shape)
    x, w, u, b, h0 = arrays
    dev = [cuda.to_device(a) for a in arrays]
    row = {"shape": ",".join(map(str, shape))}
    plan = plans.registers_forward_plan(batch, steps, features, units, np.dtype(np.float32), activations.TANH,
                                        False, False, True)
    row["registers_plan"] = (f"{plan.blocks}x{plan.shape.threads} r{plan.shape.rows} l{plan.shape.lanes} "
                       f"s{plan.shape.stage_steps}" if plan else "-")
    d_out = cuda.to_device(np.random.default_rng(1).normal(size=(batch, steps, units)).astype(np.float32))
    for mode, settings in MODES.items():
        if mode == "registers" and plan is None:
            continue
        with config.override(**settings, **({} if persistent else {"CUDA_PERSISTENT": False})):
            row[f"{mode}_ms"] = median_ms(lambda: kernels.forward(*dev), cuda.synchronize)
            row[f"{mode}_events"] = event_ms(lambda: kernels.forward(*dev))
            row[f"{mode}_host_us"] = host_us(lambda: kernels.forward(*dev))
            if train:
                def step():
                    out, state = kernels.forward(*dev)
                    return kernels.backward(*dev, out, d_out, None)

                row[f"{mode}_train"] = median_ms(step, cuda.synchronize)
            out = kernels.forward(*dev)[0].copy_to_host()
    row["ours_host"] = median_ms(lambda: kernels.forward(x, w, u, b, h0), lambda: None)
    if cpu is not None:
        row["cpu"] = median_ms(lambda: cpu.forward(x, w, u, b, h0), lambda: None, max_reps=10)
    if torch is not None:
        rnn = _torch_rnn(shape)
        tx = torch.from_numpy(x).cuda()
        th0 = torch.from_numpy(h0).cuda()[None]

        def torch_forward():
            with torch.inference_mode():
                return rnn(tx, th0)

        txg = tx.clone().requires_grad_(True)
        tdo = torch.from_numpy(d_out.copy_to_host()).cuda()

        def torch_train():
            seq, _ = rnn(txg, th0)
            seq.backward(tdo)

        for tf32 in (True, False):
            torch.backends.cudnn.allow_tf32 = tf32
            suffix = "" if tf32 else "_fp32"
            row["torch" + suffix] = median_ms(torch_forward, torch.cuda.synchronize)
            row["torch_events" + suffix] = event_ms(torch_forward)
            if train:
                row["torch_train" + suffix] = median_ms(torch_train, torch.cuda.synchronize)
        ref = torch_forward()[0].cpu().numpy()  # TF32 off
        torch.backends.cudnn.allow_tf32 = True
        row["max_abs_diff"] = float(np.abs(out - ref).max())
    return row


#: (B, F, U) and the sequence lengths of the per-step slopes.
SLOPE_SHAPES = [(1, 16, 64), (8, 32, 128), (64, 128, 128)]
SLOPE_STEPS = (100, 1000, 4000)


def slopes(kernels, torch, budget_s: float) -> str:
    """Per-step cost: forward GPU time (CUDA events) at T = 100, 1000, 4000 for each mode and cuDNN
    (TF32 off); the slope is (t(4000) - t(100)) / 3900 in µs a step."""
    from numba import cuda

    start = time.perf_counter()
    lines = ["| B,F,U | mode | " + " | ".join(f"T={t} ms" for t in SLOPE_STEPS) + " | µs/step |",
             "|---|---|" + "---|" * (len(SLOPE_STEPS) + 1)]
    for batch, features, units in SLOPE_SHAPES:
        if time.perf_counter() - start > budget_s:
            lines.append(f"| {batch},{features},{units} | budget spent | |")
            continue
        times = {}
        for steps in SLOPE_STEPS:
            arrays = _problem((batch, steps, features, units))
            dev = [cuda.to_device(a) for a in arrays]
            for mode, settings in MODES.items():
                with config.override(**settings):
                    times.setdefault(mode, []).append(
                        event_ms(functools.partial(kernels.forward, *dev), calls=5))
            if torch is not None:
                rnn = _torch_rnn((batch, steps, features, units))
                tx, th0 = torch.from_numpy(arrays[0]).cuda(), torch.from_numpy(arrays[4]).cuda()[None]
                torch.backends.cudnn.allow_tf32 = False
                with torch.inference_mode():
                    times.setdefault("cudnn_fp32", []).append(
                        event_ms(functools.partial(rnn, tx, th0), calls=5))
                torch.backends.cudnn.allow_tf32 = True
        for mode, values in times.items():
            slope = (values[-1] - values[0]) / (SLOPE_STEPS[-1] - SLOPE_STEPS[0]) * 1e3
            lines.append(f"| {batch},{features},{units} | {mode} | " + " | ".join(f"{v:.3g}" for v in values)
                         + f" | {slope:.3g} |")
    return "\n".join(lines)


def probe(kernels) -> int:
    """Persistent (grid-synchronised), rows and register-resident kernels against the per-step
    kernels on small problems; 1 when the persistent ones disagree.

    Run first, time-boxed, on a new GPU: a broken grid synchronisation shows here (a hang or a
    wrong result) before the tests and the benchmark depend on it. The other paths are printed
    for information (the tests check them).
    """
    from numba import cuda

    rng = np.random.default_rng(0)
    # the simulator runs one Python thread per GPU thread: tiny problems there
    small = simulated()
    worst = {}
    problems = ((8 if small else 200, ("persistent", "rows")), (8 if small else 100, ("registers",)))
    for units, paths in problems:
        batch, steps, features = (2, 4, 3) if small else (4, 50, 32)
        x = rng.normal(size=(batch, steps, features)).astype(np.float32)
        w = (rng.normal(size=(features, units)) / np.sqrt(features)).astype(np.float32)
        u = (rng.normal(size=(units, units)) / np.sqrt(units)).astype(np.float32)
        b = rng.normal(size=units).astype(np.float32)
        h0 = rng.normal(size=(batch, units)).astype(np.float32)
        d_out = rng.normal(size=(batch, steps, units)).astype(np.float32)
        results = {}
        for path in ("step", *paths):
            config.set(CUDA_PERSISTENT=path == "persistent", CUDA_ROWS=path == "rows",
                       CUDA_REGISTERS=path == "registers")
            t0 = time.perf_counter()
            out, state = kernels.forward(x, w, u, b, h0)
            grads = kernels.backward(x, w, u, b, h0, out, d_out, None)
            cuda.synchronize()
            print(f"probe: {path} (U={units}) first call (compile included) {time.perf_counter() - t0:.1f} s",
                  flush=True)
            results[path] = (out, state, *(grads[k] for k in sorted(grads)))
        config.reset()
        for path in paths:
            worst[path] = max(float(np.abs(a - b).max()) for a, b in zip(results["step"], results[path]))
    print("probe: max |path - per-step| over forward and backward: "
          + ", ".join(f"{path} {value:.3g}" for path, value in worst.items()), flush=True)
    return 0 if worst["persistent"] < 1e-4 else 1


def launch_overheads(kernels) -> str:
    """Host-side cost (µs) of the pieces of a call: allocation, copies, a launch through the
    dispatcher and straight through the compiled kernel's ``launch`` (no argument typing)."""
    from numba import cuda

    def per_call_us(fn, reps=300):
        fn()
        cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        cuda.synchronize()
        return (time.perf_counter() - t0) / reps * 1e6

    dtype = np.dtype(np.float32)
    from simplernn_numba.kernels.cuda import per_step, sequence

    compiled = {"first_unmasked": sequence.first_unmasked_kernel(),
                "forward_step": per_step.forward_kernel(dtype)}
    batch, steps, units = 8, 4, 64
    mask = cuda.device_array((0, 0), np.bool_)
    first = cuda.device_array(batch, np.int32)
    none = cuda.device_array((0, 0), dtype)
    xw = cuda.to_device(np.zeros((batch * steps, units), dtype))
    u_flat = cuda.to_device(np.zeros(units * units, dtype))
    h = [cuda.to_device(np.zeros((batch, units), dtype)) for _ in range(2)]
    out = cuda.device_array((batch * steps, units), dtype)
    params = (xw, none, False, mask, False, first, False, 0, True)
    step_args = (params, u_flat, h[0], h[1], out, 0)
    small = np.zeros((batch, units), dtype)

    def direct(kernel, args, grid, block):
        overload = next(iter(kernel.overloads.values()))
        launch = kernel[grid, block]  # normalised dimensions and stream
        return lambda: overload.launch(args, launch.griddim, launch.blockdim, launch.stream, 0)

    rows = {
        "cuda.device_array((8, 64))": per_call_us(lambda: cuda.device_array((batch, units), dtype)),
        "cuda.to_device(8x64 host)": per_call_us(lambda: cuda.to_device(small)),
        "first_unmasked[1, 32] (4 args)": per_call_us(
            lambda: compiled["first_unmasked"][1, 32](mask, False, False, first)),
        "first_unmasked, overload.launch": per_call_us(
            direct(compiled["first_unmasked"], (mask, False, False, first), 1, 32)),
        "forward_step[2, 256] (tuple of 9 + 5 args)": per_call_us(
            lambda: compiled["forward_step"][2, 256](*step_args)),
        "forward_step, overload.launch": per_call_us(
            direct(compiled["forward_step"], step_args, 2, 256)),
        "kernels.forward 8,4,16,64 (device arrays)": per_call_us(lambda: kernels.forward(
            cuda.to_device(np.zeros((batch, steps, 16), dtype)), cuda.to_device(np.zeros((16, units), dtype)),
            u_flat.reshape(units, units), None, h[0]), reps=50),
    }
    return "\n".join(["| host-side cost | µs per call |", "|---|---|"]
                     + [f"| {k} | {v:.1f} |" for k, v in rows.items()]) + "\n\n" + host_profile(kernels)


def host_profile(kernels, calls=200) -> str:
    """Where the host time of a small forward call goes: cProfile over ``calls`` calls of
    ``kernels.forward`` at 32,10,8,4 (device arrays in), the 15 costliest functions by own time."""
    import cProfile
    import io
    import pstats

    from numba import cuda

    rng = np.random.default_rng(0)
    dev = [cuda.to_device(rng.normal(size=shape).astype(np.float32))
           for shape in ((32, 10, 8), (8, 4), (4, 4), (4,), (32, 4))]
    kernels.forward(*dev)
    cuda.synchronize()
    profile = cProfile.Profile()
    t0 = time.perf_counter()
    profile.enable()
    for _ in range(calls):
        kernels.forward(*dev)
    profile.disable()
    cuda.synchronize()
    per_call = (time.perf_counter() - t0) / calls * 1e6
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("tottime").print_stats(15)
    return f"cProfile of kernels.forward at 32,10,8,4 ({per_call:.0f} µs a call under the profiler):\n```\n" \
        + "\n".join(text.getvalue().splitlines()[-24:]) + "\n```"


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:.3g}"


def table(rows, torch_present: bool) -> str:
    cols = ["shape", "registers_plan", *(f"{mode}_{what}" for what in ("ms", "events", "host_us", "train")
                                         for mode in MODES), "ours_host", "cpu"]
    if torch_present:
        cols += ["torch", "torch_fp32", "torch_events_fp32", "torch_train", "torch_train_fp32",
                 "max_abs_diff"]
    ratios = ["registers/fp32", "shared_memory/fp32", "registers_train/fp32"] if torch_present else []
    lines = ["| B,T,F,U | " + " | ".join(cols[1:] + ratios) + " |", "|" + "---|" * (len(cols) + len(ratios))]
    for row in rows:
        cells = [fmt(row.get(c)) for c in cols]
        if torch_present:
            for ours, theirs in (("registers_events", "torch_events_fp32"),
                                 ("shared_memory_events", "torch_events_fp32"),
                                 ("registers_train", "torch_train_fp32")):
                ok = row.get(ours) and row.get(theirs)
                cells.append(f"{row[ours] / row[theirs]:.2f}x" if ok else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=240.0, help="stop starting new shapes after this")
    parser.add_argument("--out", default=os.path.join(os.environ["OUT"], "gpu_bench.md")
                        if os.environ.get("OUT") else None)
    parser.add_argument("--no-train", action="store_true", help="forward only")
    parser.add_argument("--quick", action="store_true", help="forward only, no CPU column")
    parser.add_argument("--no-persistent", action="store_true",
                        help="never run the persistent kernels (after a failed --probe)")
    parser.add_argument("--probe", action="store_true",
                        help="only the check of the persistent, rows and registers paths against per-step")
    args = parser.parse_args()

    from simplernn_numba import dispatch

    if not dispatch.cuda_available():
        print("gpu_bench: no CUDA GPU usable (numba.cuda.is_available() is False); nothing to do.")
        return 0
    from numba import cuda

    from simplernn_numba.kernels import cpu
    from simplernn_numba.kernels import cuda as kernels

    if args.probe:
        return probe(kernels)
    if simulated():
        print("gpu_bench: the CUDA simulator is on (NUMBA_ENABLE_CUDASIM); timings would be meaningless.")
        return 0
    if args.no_persistent:
        config.DEFAULTS["CUDA_PERSISTENT"] = False
        config.reset()
    torch = torch_cuda()
    device = cuda.get_current_device()
    header = [f"# GPU benchmark ({device.name.decode() if isinstance(device.name, bytes) else device.name}, "
              f"{device.MULTIPROCESSOR_COUNT} SMs)", "",
              "float32 forward (and forward+backward `*_train`), tanh, return_sequences=True;"
              " inputs and weights already on the GPU. Modes: `registers` the register-resident plans"
              " (CUDA_REGISTERS=True; `registers_plan`: blocks x threads, rows a block, lanes a column,"
              " steps a staged chunk), `shared_memory` the rows / persistent / per-step choice"
              " (CUDA_REGISTERS=False, the default)."
              " `*_ms`: median wall ms per call, synchronised; `*_events`: GPU ms per call by CUDA"
              " events over 20 queued calls; `*_host_us`: Python µs per call over 50 queued calls;"
              " `ours_host`: default choice, NumPy in and out; `cpu`: our CPU kernel."
              " `torch` runs cuDNN with its default TF32 (~1e-3 errors), `*_fp32` with TF32 off;"
              " `max_abs_diff`: our last mode against TF32-off cuDNN; ratios: ours over TF32-off cuDNN"
              " (below 1: faster).",
              "torch: " + (f"{torch.__version__} nn.RNN on CUDA (cuDNN)" if torch else "not available"), ""]
    try:
        overheads = launch_overheads(kernels)
    except Exception as exc:  # a measurement aid only: report and go on
        overheads = f"launch overheads not measured: {exc!r}"
    print(overheads, flush=True)
    header += [overheads, ""]
    start = time.perf_counter()
    rows = []
    shapes_budget = 0.75 * args.budget_s  # the rest for the per-step slopes
    for shape in ANCHORS + REGISTERS + SMALL_BATCH:
        if time.perf_counter() - start > shapes_budget:
            print(f"budget of {args.budget_s} s spent; skipping {shape}", file=sys.stderr)
            continue
        rows.append(bench_shape(shape, kernels, None if args.quick else cpu, torch,
                                train=not (args.no_train or args.quick),
                                persistent=not args.no_persistent))
        print(rows[-1], flush=True)
        report = "\n".join(header) + "\n" + table(rows, torch is not None) + "\n"
        if args.out:  # rewritten after every shape, so a timeout keeps what was measured
            with open(args.out, "w") as fh:
                fh.write(report)
    left = args.budget_s - (time.perf_counter() - start)
    report += "\n## Per-step slopes (forward, GPU ms per call by CUDA events)\n\n" + (
        slopes(kernels, torch, left - 5) if left > 10 else "budget spent") + "\n"
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(report)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
