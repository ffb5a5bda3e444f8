"""Per-step latency of streaming inference (B=1, U=64, F=16, float32 by default).

    python benchmarks/bench_streaming.py [--batch 1] [--units 64] [--features 16] [--calls 20000]

Prints the median time per call, over ``--calls`` calls after a warm-up, of:
the raw compiled step kernel, ``Stream.step``, ``step(layer, ...)``, a full layer call
on one timestep, and (when installed) ``torch.nn.RNNCell`` for comparison.
"""

from __future__ import annotations

import argparse

import numpy as np

from simplernn_numba import SimpleRNN, Stream
from simplernn_numba.bench.timing import median_seconds
from simplernn_numba.interop.streaming import step
from simplernn_numba.kernels.cpu.activation import choose
from simplernn_numba.kernels.cpu.step import step as step_kernel


def median_per_call(fn, calls: int) -> float:
    """Median seconds of ``fn()`` over ``calls`` calls after a warm-up (up to 1,000 calls): the
    package's :func:`~simplernn_numba.bench.timing.median_seconds` with no time budget."""
    for _ in range(min(calls, 1000)):
        fn()
    return median_seconds(fn, calls, budget_s=float("inf"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    layer = SimpleRNN(args.units)
    layer.build((None, None, args.features))
    x_t = rng.random((args.batch, args.features), dtype=np.float32)
    state = np.zeros((args.batch, args.units), np.float32)
    out = np.empty_like(state)
    stream = Stream(layer, batch_size=args.batch)
    k, r, b = layer.kernel, layer.recurrent_kernel, layer.bias
    tanh = choose("tanh")
    x_seq = x_t[:, None]
    cases = {
        "step kernel (no checks)": lambda: step_kernel(x_t, state, k, r, b, tanh, out),
        "Stream.step": lambda: stream.step(x_t),
        "step(layer, x_t, state)": lambda: step(layer, x_t, state),
        "layer(x[:, None]) full call, T=1": lambda: layer(x_seq),
    }
    try:
        import torch

        torch.set_num_threads(1)
        cell = torch.nn.RNNCell(args.features, args.units)
        xt, ht = torch.from_numpy(x_t), torch.from_numpy(state)

        def torch_step():
            with torch.no_grad():
                cell(xt, ht)

        cases["torch.nn.RNNCell (1 thread, no_grad)"] = torch_step
    except ImportError:
        pass
    print(f"B={args.batch} U={args.units} F={args.features} float32, median of {args.calls} calls")
    for name, fn in cases.items():
        print(f"  {name:40s} {median_per_call(fn, args.calls) * 1e6:8.2f} us")


if __name__ == "__main__":
    main()
