"""First-call cost on a new machine: import + first calls in fresh interpreters, each with an
empty Numba cache (``NUMBA_CACHE_DIR`` in a temporary folder).

Each scenario runs in its own interpreter: the base call (a forward call of 32,10,8,4 float32
tanh), then the scenario's own call; the table gives the import, the base call and the extra
time of the scenario's call (wall and CPU seconds), and how many functions Numba compiled for
each. ``--warm`` runs every scenario a second time on the cache the first run filled.

    python benchmarks/cold_start.py [--scenario NAME ...] [--warm]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

#: name -> code run after the base call (``np``, ``srn``, ``rng`` and ``x`` defined).
SCENARIOS = {
    "forward": "",
    "training": "out, h, c = srn.forward(x, *w, return_sequences=True); "
                "srn.backward(c, d_output=np.ones_like(out))",
    "masked": "m = np.ones((32, 10), bool); m[:, 7:] = False; srn.SimpleRNN(4)(x, mask=m)",
    "relu": "srn.SimpleRNN(4, activation='relu')(x)",
    "one_row": "srn.SimpleRNN(64)(rng.random((1, 1000, 16)).astype(np.float32))",
    "panels": "srn.SimpleRNN(128)(rng.random((64, 100, 128)).astype(np.float32))",
    "float64": "srn.SimpleRNN(4, dtype='float64')(x.astype(np.float64))",
    "demo": "from simplernn_numba._demo import run; run(repeat=1)",
}

_SCRIPT = r"""
import json, sys, time
clock = lambda: (time.perf_counter(), time.process_time())
t0 = clock()  # the import includes Numba's, which the compile listener needs first
from numba.core import event
compiles = []
event.register("numba:compile", type("L", (event.Listener,), {
    "on_start": lambda self, e: None,
    "on_end": lambda self, e: compiles.append(1)})())
import numpy as np
import simplernn_numba as srn
t1 = clock()
rng = np.random.default_rng(0)
x = rng.random((32, 10, 8)).astype(np.float32)
layer = srn.SimpleRNN(4, return_sequences=True, return_state=True)
layer(x)
w = layer.get_weights()
t2 = clock(); base_compiles = len(compiles)
import contextlib, io
with contextlib.redirect_stdout(io.StringIO()):
    exec(sys.argv[1])
t3 = clock()
print(json.dumps({"import": [t1[0] - t0[0], t1[1] - t0[1]], "base": [t2[0] - t1[0], t2[1] - t1[1]],
                  "extra": [t3[0] - t2[0], t3[1] - t2[1]], "base_compiles": base_compiles,
                  "extra_compiles": len(compiles) - base_compiles}))
"""


def measure(code: str, cache: str) -> dict:
    """One fresh interpreter: the base call then ``code``, with Numba's cache in ``cache``."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    src = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, "-c", _SCRIPT, code], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS))
    parser.add_argument("--warm", action="store_true", help="also rerun each on its filled cache")
    args = parser.parse_args(argv)
    print("| scenario | cache | import s | base call s (cpu) | compiles | scenario call s (cpu) | compiles |")
    print("|---|---|---|---|---|---|---|")
    for name in args.scenario or list(SCENARIOS):
        with tempfile.TemporaryDirectory() as cache:
            for label in ("cold", "warm") if args.warm else ("cold",):
                r = measure(SCENARIOS[name], cache)
                print(f"| {name} | {label} | {r['import'][0]:.2f} | {r['base'][0]:.2f} ({r['base'][1]:.2f}) "
                      f"| {r['base_compiles']} | {r['extra'][0]:.2f} ({r['extra'][1]:.2f}) "
                      f"| {r['extra_compiles']} |", flush=True)


if __name__ == "__main__":
    main()
