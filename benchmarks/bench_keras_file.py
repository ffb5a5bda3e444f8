"""A saved Keras model: ``load_model(path).predict(x)`` against Keras' own ``model.predict``.

    python benchmarks/bench_keras_file.py [--batches 1,8,64] [--timesteps 100] [--units 64]
        [--numpy-python PYTHON]

The model: ``Embedding(vocab, 32, mask_zero=True)``, two ``SimpleRNN(units)`` (the first with
``return_sequences``) and a softmax ``Dense`` head, random weights (normal, 0.1) saved as ``.keras``
by Keras 3 with ``KERAS_BACKEND`` (torch when unset); token rows are post-padded to random
lengths. This process times ours against that backend's ``model.predict`` (and a plain
``model(x)`` call); a second process, with ``KERAS_BACKEND=numpy`` (``--numpy-python``: an
interpreter with Keras, jax and scipy; default this one), loads the same file and times ours
against Keras' NumPy backend. Both use the interleaved rounds of
:func:`simplernn_numba.bench.timing.run`, so each ratio compares timings of one process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from simplernn_numba.bench.cases import Case
from simplernn_numba.bench.peers import OURS
from simplernn_numba.bench.timing import run

VOCAB, EMBEDDING, CLASSES = 1000, 32, 4
TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


def tokens(batch: int, timesteps: int) -> np.ndarray:
    """Token rows (batch, timesteps) int32, post-padded with zeros to random lengths."""
    rng = np.random.default_rng(batch)
    x = rng.integers(1, VOCAB, size=(batch, timesteps), dtype=np.int32)
    lengths = rng.integers(timesteps // 4, timesteps + 1, size=batch)
    x[np.arange(timesteps)[None, :] >= lengths[:, None]] = 0
    return x


def save_model(path: Path, units: int) -> None:
    """Build, randomly weight and save the benchmark model with Keras 3."""
    import keras

    rng = np.random.default_rng(0)
    model = keras.Sequential([
        keras.Input((None,), dtype="int32"), keras.layers.Embedding(VOCAB, EMBEDDING, mask_zero=True),
        keras.layers.SimpleRNN(units, return_sequences=True), keras.layers.SimpleRNN(units),
        keras.layers.Dense(CLASSES, activation="softmax"),
    ])
    for variable in model.weights:
        # small weights: a recurrence with a spectral radius above 1 is chaotic over 100 steps, and
        # then any two summation orders (ours, Keras', ours at another batch size) drift apart
        variable.assign(rng.normal(scale=0.1, size=variable.shape).astype("float32"))
    model.save(path)


def time_both(path: Path, batches, timesteps: int, units: int, with_call: bool) -> dict:
    """{batch: {implementation: median ms}} for ours and this process' Keras backend."""
    import keras

    from simplernn_numba.interop.keras import load_model

    ours, theirs = load_model(path, device="cpu"), keras.saving.load_model(path)
    peer = f"keras_{keras.backend.backend()}"

    def builder(call):
        def build(problem, case):
            x = tokens(case.batch, case.steps)
            return lambda: call(x)
        return build

    builders = {
        OURS: builder(ours.predict),
        f"{peer}.predict": builder(lambda x: theirs.predict(x, verbose=0)),
        f"{peer}(x)": builder(lambda x: keras.ops.convert_to_numpy(theirs(x, training=False))),
    }
    peers = [name for name in builders if name != OURS and (with_call or name.endswith(".predict"))]
    rows = run([Case(b, timesteps, EMBEDDING, units) for b in batches], peers=peers, builders=builders,
               tolerance=lambda case: TOLERANCE)
    return {row.case.batch: row.timings for row in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", default="1,8,64")
    parser.add_argument("--timesteps", type=int, default=100)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--numpy-python", default=sys.executable)
    parser.add_argument("--child", help=argparse.SUPPRESS)  # a saved model: time it, print JSON
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    if args.child:
        print(json.dumps(time_both(Path(args.child), batches, args.timesteps, args.units, False)))
        return
    os.environ.setdefault("KERAS_BACKEND", "torch")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        save_model(path, args.units)
        here = time_both(path, batches, args.timesteps, args.units, True)
        child = subprocess.run(
            [args.numpy_python, __file__, "--child", str(path), "--batches", args.batches,
             "--timesteps", str(args.timesteps), "--units", str(args.units)],
            env={**os.environ, "KERAS_BACKEND": "numpy"}, capture_output=True, text=True)
    numpy_rows = json.loads(child.stdout.splitlines()[-1]) if child.returncode == 0 else {}
    if child.returncode:
        print(f"Keras NumPy backend not timed: {child.stderr.strip().splitlines()[-1]}", file=sys.stderr)
    print(f"T={args.timesteps}, units={args.units}, Embedding({VOCAB}, {EMBEDDING}), median ms per call")
    print("| batch | ours | Keras torch predict | Keras torch model(x) | ours (2nd process) "
          "| Keras NumPy predict | speed-up vs the faster predict |")
    print("|---|---|---|---|---|---|---|")
    nan = float("nan")
    for batch in batches:
        row, other = here[batch], numpy_rows.get(str(batch), {})
        speedups = [row.get("keras_torch.predict", nan) / row[OURS]]
        if other:
            speedups.append(other.get("keras_numpy.predict", nan) / other[OURS])
        cells = [row[OURS], row.get("keras_torch.predict", nan), row.get("keras_torch(x)", nan),
                 other.get(OURS, nan), other.get("keras_numpy.predict", nan)]
        print(f"| {batch} | " + " | ".join(f"{c:.3f}" for c in cells) + f" | {min(speedups):.1f}x |")

if __name__ == "__main__":
    main()
