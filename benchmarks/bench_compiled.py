"""A SimpleRNN advanced from a user's ``@njit`` loop (:mod:`simplernn_numba.compiled`), against
the layer's own call and ``Stream.step``, on one sequence (B=1, T=100, F=8, U=32 by default).

    python benchmarks/bench_compiled.py [--batch 1] [--steps 100] [--features 8] [--units 32]
                                        [--dtype float32] [--rounds 10]

Every implementation runs the whole sequence and returns its outputs (B, T, U), checked
against the layer's to float rounding, then all are timed in interleaved rounds
(:func:`simplernn_numba.bench.timing.run`). Prints the median time per call and per step, and
the two ratios the targets are about: a ``compiled.step`` per step against ``Stream.step``,
and the ``compiled.step`` loop against the layer's call.
"""

from __future__ import annotations

import argparse

import numpy as np
from numba import njit

from simplernn_numba import SimpleRNN, Stream, compiled
from simplernn_numba.bench.cases import Case
from simplernn_numba.bench.peers import OURS
from simplernn_numba.bench.timing import run


@njit
def step_loop(x, h0, kernel, recurrent_kernel, bias, outputs):
    """A user's loop as docs/usage.md shows it: two state buffers swapped every step, each new
    state copied into ``outputs`` by the user's own code."""
    h, new = h0.copy(), np.empty_like(h0)
    for t in range(x.shape[1]):
        compiled.step(x[:, t], h, kernel, recurrent_kernel, bias, new, "tanh")
        h, new = new, h
        for b in range(h.shape[0]):
            for u in range(h.shape[1]):
                outputs[b, t, u] = h[b, u]
    return outputs


def _layer(problem, case: Case) -> SimpleRNN:
    layer = SimpleRNN(case.units, return_sequences=True, dtype=case.dtype)
    layer.build(problem.x.shape)
    layer.set_weights([problem.kernel, problem.recurrent_kernel, problem.bias])
    return layer


def _layer_call(problem, case):
    layer = _layer(problem, case)
    return lambda: layer(problem.x)


def _step_loop(problem, case):
    layer = _layer(problem, case)
    weights = layer.kernel, layer.recurrent_kernel, layer.bias
    outputs = np.empty((case.batch, case.steps, case.units), case.dtype)
    return lambda: step_loop(problem.x, problem.initial_state, *weights, outputs)


def _forward(problem, case):
    layer = _layer(problem, case)
    weights = layer.kernel, layer.recurrent_kernel, layer.bias
    outputs = np.empty((case.batch, case.steps, case.units), case.dtype)

    def call():
        compiled.forward(problem.x, problem.initial_state, *weights, outputs)
        return outputs
    return call


def _stream(problem, case):
    layer = _layer(problem, case)
    stream = Stream(layer, batch_size=case.batch)
    steps = [np.ascontiguousarray(problem.x[:, t]) for t in range(case.steps)]

    def call():
        stream.reset()
        states = [stream.step(x_t) for x_t in steps]  # each step returns a new array
        return np.stack(states, axis=1)
    return call


BUILDERS = {OURS: _layer_call, "compiled.step in @njit loop": _step_loop,
            "compiled.forward (Python)": _forward, "Stream.step loop (Python)": _stream}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--features", type=int, default=8)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    case = Case(args.batch, args.steps, args.features, args.units, args.dtype)
    (row,) = run([case], peers=[n for n in BUILDERS if n != OURS], builders=BUILDERS,
                 rounds=args.rounds, progress=False)
    print(f"B={case.batch} T={case.steps} F={case.features} U={case.units} {case.dtype}")
    for name, ms in row.timings.items():
        print(f"  {name:32s} {1e3 * ms:10.2f} us/call {1e6 * ms / case.steps:9.3f} ns/step")
    for name, note in row.notes.items():
        print(f"  {name:32s} {note}")
    t = row.timings
    loop, stream, layer = (t.get("compiled.step in @njit loop"), t.get("Stream.step loop (Python)"),
                           t.get(OURS))
    if loop and stream and layer:
        print(f"compiled.step per step / Stream.step per step: {loop / stream:.3f} (target <= 0.1)")
        print(f"compiled.step loop / layer call: {loop / layer:.2f} (target <= 3)")


if __name__ == "__main__":
    main()
