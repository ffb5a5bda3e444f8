"""GPU benchmark: our CUDA kernels against torch.nn.RNN on CUDA (cuDNN) and our CPU kernels.

float32, tanh, return_sequences=True, batch-major (B, T, F). Inputs and weights
already on the GPU for the GPU rows (the Layer caches weights there); median
milliseconds per call after a warm-up (JIT compile excluded). Shapes: the grid
of ``perf_anchors.md`` plus batch 1-8 cases. Writes a Markdown table to
``--out`` (default ``$OUT/gpu_bench.md`` when ``OUT`` is set) and to stdout.
Exits 0 with a message when no GPU is usable.

    python benchmarks/gpu_bench.py [--budget-s 240] [--out report.md] [--no-persistent]
    python benchmarks/gpu_bench.py --probe   # one small persistent-vs-per-step check, exit 1 on mismatch
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

from simplernn_numba.kernels import config

ANCHORS = [(32, 10, 8, 4), (1, 1000, 16, 64), (64, 100, 128, 128), (16, 500, 32, 32),
           (128, 200, 512, 512)]
SMALL_BATCH = [(1, 200, 64, 256), (4, 200, 64, 256), (8, 200, 64, 256), (1, 100, 128, 512),
               (8, 100, 128, 512), (2, 1000, 32, 128)]


def median_ms(fn, sync, min_time=0.3, max_reps=30) -> float:
    """Median wall time of ``fn`` in ms (after one warm-up call), ``sync`` after each call."""
    fn()
    sync()
    times = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < 3 or time.perf_counter() - start < min_time):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


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


def bench_shape(shape, kernels, cpu, torch, train: bool, persistent: bool) -> dict:
    from numba import cuda

    batch, steps, features, units = shape
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, steps, features)).astype(np.float32)
    w = (rng.normal(size=(features, units)) / np.sqrt(features)).astype(np.float32)
    u = (rng.normal(size=(units, units)) / np.sqrt(units)).astype(np.float32)
    b = np.zeros(units, np.float32)
    h0 = np.zeros((batch, units), np.float32)
    dev = [cuda.to_device(a) for a in (x, w, u, b, h0)]
    row = {"shape": ",".join(map(str, shape))}

    def ours(use_persistent, use_rows=False):
        config.set(CUDA_PERSISTENT=use_persistent, CUDA_ROWS=use_rows)
        return kernels.forward(*dev)

    sync = cuda.synchronize
    compiled = kernels.kernels_for(np.dtype(np.float32))
    row["ours_step"] = median_ms(lambda: ours(False), sync)
    config.set(CUDA_PERSISTENT=True, CUDA_ROWS=True)
    plan = kernels.persistent_plan(compiled["forward_persistent"], batch, units, 4) if persistent else None
    rows = kernels.rows_plan(compiled["forward_rows"], batch, units, 4, 2, features=features,
                             lanes=config.CUDA_ROWS_LANES)
    row["ours_persistent"] = median_ms(lambda: ours(True), sync) if plan else None
    row["ours_rows"] = median_ms(lambda: ours(False, True), sync) if rows else None
    for lanes in (1, 16) if rows else ():
        config.set(CUDA_ROWS_LANES=lanes)
        row[f"rows_lanes{lanes}"] = median_ms(lambda: ours(False, True), sync)
    config.set(CUDA_ROWS_LANES=config.DEFAULTS["CUDA_ROWS_LANES"])
    row["plan"] = f"{plan.blocks}x{plan.threads}/{plan.lanes}{'s' if plan.stage else ''}" if plan else "-"
    row["rows_plan"] = (f"{rows.blocks}x{rows.threads}/{rows.rows} {rows.shared_bytes // 1024}K l{rows.lanes}"
                        if rows else "-")
    config.reset()
    row["ours_auto"] = median_ms(lambda: kernels.forward(*dev), sync)
    row["auto_queued"] = queued_ms(lambda: kernels.forward(*dev), sync)
    row["ours_host"] = median_ms(lambda: kernels.forward(x, w, u, b, h0), lambda: None)
    out, state = kernels.forward(*dev)
    if train:
        d_out = cuda.to_device(rng.normal(size=(batch, steps, units)).astype(np.float32))
        row["ours_train"] = median_ms(
            lambda: kernels.backward(*dev, *kernels.forward(*dev)[:1], d_out, None), sync)
    if cpu is not None:
        row["cpu"] = median_ms(lambda: cpu.forward(x, w, u, b, h0), lambda: None, max_reps=10)
    if torch is not None:
        rnn = torch.nn.RNN(features, units, batch_first=True).cuda()
        with torch.no_grad():
            rnn.weight_ih_l0.copy_(torch.from_numpy(w.T.copy()))
            rnn.weight_hh_l0.copy_(torch.from_numpy(u.T.copy()))
            rnn.bias_ih_l0.zero_()
            rnn.bias_hh_l0.zero_()
        tx = torch.from_numpy(x).cuda()
        th0 = torch.from_numpy(h0).cuda()[None]

        def torch_forward():
            with torch.inference_mode():
                return rnn(tx, th0)

        row["torch"] = median_ms(torch_forward, torch.cuda.synchronize)  # torch's defaults: TF32
        torch.backends.cudnn.allow_tf32 = False
        row["torch_fp32"] = median_ms(torch_forward, torch.cuda.synchronize)
        ref = torch_forward()[0].cpu().numpy()
        torch.backends.cudnn.allow_tf32 = True
        row["max_abs_diff"] = float(np.abs(out.copy_to_host() - ref).max())
        if train:
            txg = tx.clone().requires_grad_(True)
            tdo = torch.from_numpy(d_out.copy_to_host()).cuda()

            def torch_train():
                seq, _ = rnn(txg, th0)
                seq.backward(tdo)

            row["torch_train"] = median_ms(torch_train, torch.cuda.synchronize)
    return row


def probe(kernels) -> int:
    """Persistent (grid-synchronised) against per-step kernels on one small problem; 1 on mismatch.

    Run first, time-boxed, on a new GPU: a broken grid synchronisation shows here (a hang or a
    wrong result) before the tests and the benchmark depend on it.
    """
    from numba import cuda

    rng = np.random.default_rng(0)
    # the simulator runs one Python thread per GPU thread: a tiny problem there
    batch, steps, features, units = (2, 4, 3, 8) if kernels.simulator_enabled() else (4, 50, 32, 200)
    x = rng.normal(size=(batch, steps, features)).astype(np.float32)
    w = (rng.normal(size=(features, units)) / np.sqrt(features)).astype(np.float32)
    u = (rng.normal(size=(units, units)) / np.sqrt(units)).astype(np.float32)
    b = rng.normal(size=units).astype(np.float32)
    h0 = rng.normal(size=(batch, units)).astype(np.float32)
    d_out = rng.normal(size=(batch, steps, units)).astype(np.float32)
    results = {}
    for path in ("step", "persistent", "rows"):
        config.set(CUDA_PERSISTENT=path == "persistent", CUDA_ROWS=path == "rows")
        t0 = time.perf_counter()
        out, state = kernels.forward(x, w, u, b, h0)
        grads = kernels.backward(x, w, u, b, h0, out, d_out, None)
        cuda.synchronize()
        print(f"probe: {path} first call (compile included) {time.perf_counter() - t0:.1f} s", flush=True)
        results[path] = (out, state, *(grads[k] for k in sorted(grads)))
    config.reset()
    worst = {path: max(float(np.abs(a - b).max()) for a, b in zip(results["step"], results[path]))
             for path in ("persistent", "rows")}
    print(f"probe: max |persistent - per-step| = {worst['persistent']:.3g}, |rows - per-step| = "
          f"{worst['rows']:.3g} over forward and backward", flush=True)
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
    compiled = kernels.kernels_for(dtype)
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
    cols = ["shape", "plan", "rows_plan", "ours_step", "ours_persistent", "ours_rows", "rows_lanes1",
            "rows_lanes16", "ours_auto", "auto_queued", "ours_host", "ours_train", "cpu"]
    if torch_present:
        cols += ["torch", "torch_fp32", "torch_train", "max_abs_diff"]
    lines = ["| B,T,F,U | " + " | ".join(cols[1:]) + (" | auto/torch |" if torch_present else " |"),
             "|" + "---|" * (len(cols) + (1 if torch_present else 0))]
    for row in rows:
        cells = [fmt(row.get(c)) for c in cols]
        if torch_present and row.get("torch"):
            cells.append(f"{row['ours_auto'] / row['torch']:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=240.0, help="stop starting new shapes after this")
    parser.add_argument("--out", default=os.path.join(os.environ["OUT"], "gpu_bench.md")
                        if os.environ.get("OUT") else None)
    parser.add_argument("--no-train", action="store_true", help="forward only")
    parser.add_argument("--quick", action="store_true",
                        help="forward only, no CPU column, the grid of perf_anchors.md first")
    parser.add_argument("--no-persistent", action="store_true",
                        help="never run the persistent kernels (after a failed --probe)")
    parser.add_argument("--probe", action="store_true", help="only the persistent-vs-per-step check")
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
    if kernels.simulator_enabled():
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
              " median ms per call;"
              " inputs and weights already on the GPU (`ours_host`: NumPy in and out);"
              " `cpu` is our CPU kernel on host arrays; `plan`: persistent blocks x threads/lanes"
              " (s: states staged in shared memory); `rows_plan`: rows kernels' blocks x threads/rows"
              " per block, shared memory and lanes; `rows_lanesN`: N threads per (row, unit) pair;"
              " `ours_auto`: the default choice; `auto_queued`: 20 calls queued without"
              " synchronising (the GPU's time per call when it exceeds the host's)."
              " `torch` runs cuDNN with its default TF32"
              " (~1e-3 errors), `torch_fp32` with TF32 off; `max_abs_diff` is against the latter.",
              "torch: " + (f"{torch.__version__} nn.RNN on CUDA (cuDNN)" if torch else "not available"), ""]
    try:
        overheads = launch_overheads(kernels)
    except Exception as exc:  # a measurement aid only: report and go on
        overheads = f"launch overheads not measured: {exc!r}"
    print(overheads, flush=True)
    header += [overheads, ""]
    start = time.perf_counter()
    rows = []
    for shape in ANCHORS + SMALL_BATCH if args.quick else SMALL_BATCH[:3] + ANCHORS + SMALL_BATCH[3:]:
        if time.perf_counter() - start > args.budget_s:
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
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
