"""Command line: ``python -m simplernn_numba demo``.

The demo runs the seed's example on built-in random data, checks the compiled
kernel against the NumPy reference, and times both.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from . import SimpleRNN
from .kernels import reference


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def demo(repeat: int = 20) -> None:
    """Print outputs, agreement with the reference, and timings for a few shapes."""
    rng = np.random.default_rng(0)
    inputs = rng.random((32, 10, 8)).astype(np.float32)
    layer = SimpleRNN(4, return_sequences=True, return_state=True, seed=0)
    start = time.perf_counter()
    seq, state = layer(inputs)
    print(f"first call (includes compilation or cache load): {time.perf_counter() - start:.2f} s")
    print(f"seed example: inputs {inputs.shape} -> sequence {seq.shape}, final state {state.shape}")
    print("final state of sample 0:", np.array2string(state[0], precision=4))
    print()
    print(f"{'B,T,F,U':>18} {'numba ms':>9} {'numpy ms':>9} {'speed-up':>8} {'max |diff|':>10}")
    for batch, steps, features, units in [(32, 10, 8, 4), (1, 1000, 16, 64), (64, 100, 128, 128)]:
        x = rng.normal(size=(batch, steps, features)).astype(np.float32)
        layer = SimpleRNN(units, return_sequences=True, seed=0)
        out = layer(x)
        h0 = np.zeros((batch, units), np.float32)
        args = (x, *layer.weights, h0)
        ref, _ = reference.forward(*args, activation="tanh")
        ours_ms = _median_ms(lambda layer=layer, x=x: layer(x), repeat)
        ref_ms = _median_ms(lambda a=args: reference.forward(*a, activation="tanh"), max(3, repeat // 4))
        diff = float(np.abs(out - ref).max())
        shape = f"{batch},{steps},{features},{units}"
        print(f"{shape:>18} {ours_ms:9.3f} {ref_ms:9.3f} {ref_ms / ours_ms:7.1f}x {diff:10.2e}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simplernn_numba")
    sub = parser.add_subparsers(dest="command", required=True)
    demo_parser = sub.add_parser("demo", help="run the seed example and time it against NumPy")
    demo_parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    if args.command == "demo":
        demo(args.repeat)


if __name__ == "__main__":
    main()
