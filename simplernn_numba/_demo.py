"""``python -m simplernn_numba demo``: the Keras documentation's example on built-in data.

The demo runs ``SimpleRNN(4, return_sequences=True, return_state=True)`` on random
inputs, checks the compiled kernel against the NumPy reference on three shapes, and
times both. It seeds everything with :func:`~simplernn_numba.set_random_seed`, so
every printed value except the timings is the same on every run.
"""

from __future__ import annotations

import time

import numpy as np

from .kernels import reference
from .layer import SimpleRNN
from .seeding import set_random_seed


def _median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def run(repeat: int = 20) -> None:
    """Print outputs, agreement with the reference, and timings for a few shapes."""
    set_random_seed(0)
    rng = np.random.default_rng(0)
    inputs = rng.random((32, 10, 8)).astype(np.float32)
    layer = SimpleRNN(4, return_sequences=True, return_state=True, seed=0)
    start = time.perf_counter()
    seq, state = layer(inputs)
    print(f"first call (includes compilation or cache load): {time.perf_counter() - start:.2f} s")
    print(f"Keras example: inputs {inputs.shape} -> sequence {seq.shape}, final state {state.shape}")
    print("final state of sample 0:", np.array2string(state[0], precision=4))
    print()
    print(f"{'B,T,F,U':>18} {'numba ms':>9} {'numpy ms':>9} {'speed-up':>8} {'max |diff|':>10}")
    for batch, steps, features, units in [(32, 10, 8, 4), (1, 1000, 16, 64), (64, 100, 128, 128)]:
        x = rng.normal(size=(batch, steps, features)).astype(np.float32)
        layer = SimpleRNN(units, return_sequences=True, seed=0)
        out = layer(x)
        h0 = np.zeros((batch, units), np.float32)
        args = (x, *layer.weights, h0)
        # NumPy's BLAS (the reference, the last shape's timing) leaves its threads spinning for
        # a while after a call, on the cores our parallel kernels use: let them stop first
        time.sleep(0.2)
        ours_ms = _median_ms(lambda layer=layer, x=x: layer(x), repeat)
        ref, _ = reference.forward(*args, activation="tanh")
        ref_ms = _median_ms(lambda a=args: reference.forward(*a, activation="tanh"), max(3, repeat // 4))
        diff = float(np.abs(out - ref).max())
        shape = f"{batch},{steps},{features},{units}"
        print(f"{shape:>18} {ours_ms:9.3f} {ref_ms:9.3f} {ref_ms / ours_ms:7.1f}x {diff:10.2e}")
