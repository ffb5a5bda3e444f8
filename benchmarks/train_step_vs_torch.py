"""Training step (forward + backward) against torch autograd, float32, tanh, return_sequences=True.

Ours: ``simplernn_numba.forward`` + ``simplernn_numba.backward``. Torch: ``nn.RNN(batch_first=True)``
forward + ``.backward()`` with gradients for the inputs, the initial state and every weight, on 2
threads. Prints the median milliseconds of each and the ratio torch / ours (> 1: we are faster).

    PYTHONPATH=. python benchmarks/train_step_vs_torch.py [--budget SECONDS_PER_MEASUREMENT]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import simplernn_numba as srn

SHAPES = ((32, 10, 8, 4), (1, 1000, 16, 64), (64, 100, 128, 128), (16, 500, 32, 32), (128, 200, 512, 512))


def median_ms(fn, budget: float) -> float:
    fn()  # warm-up (compilation, allocator)
    times, start = [], time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < budget and len(times) < 200):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def measure(batch: int, steps: int, features: int, units: int, budget: float) -> dict:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, steps, features)).astype(np.float32)
    kernel = (rng.normal(size=(features, units)) / np.sqrt(features)).astype(np.float32)
    recurrent = (rng.normal(size=(units, units)) / np.sqrt(units)).astype(np.float32)
    bias = np.zeros(units, np.float32)
    h0 = np.zeros((batch, units), np.float32)
    d_out = rng.normal(size=(batch, steps, units)).astype(np.float32)

    def ours_step():
        _, _, cache = srn.forward(x, kernel, recurrent, bias, h0, return_sequences=True)
        return srn.backward(cache, d_out)

    _, _, cache = srn.forward(x, kernel, recurrent, bias, h0, return_sequences=True)

    rnn = torch.nn.RNN(features, units, batch_first=True)
    tx = torch.tensor(x, requires_grad=True)
    th0 = torch.zeros(1, batch, units, requires_grad=True)
    tdout = torch.tensor(d_out)

    def torch_step():
        for p in (*rnn.parameters(), tx, th0):
            p.grad = None
        out, _ = rnn(tx, th0)
        out.backward(tdout)

    return {
        "ours": median_ms(ours_step, budget),
        "ours_backward": median_ms(lambda: srn.backward(cache, d_out), budget),
        "torch": median_ms(torch_step, budget),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| B,T,F,U | ours fwd+bwd ms | (ours bwd ms) | torch fwd+bwd ms | torch / ours |")
    print("|---|---|---|---|---|")
    for shape in SHAPES:
        r = measure(*shape, budget=args.budget)
        print(f"| {','.join(map(str, shape))} | {r['ours']:.3f} | {r['ours_backward']:.3f} | "
              f"{r['torch']:.3f} | {r['torch'] / r['ours']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
