"""Thread safety: concurrent calls, stateful locking, threading layers, NUMBA_NUM_THREADS.

Anything that could abort the interpreter (Numba's workqueue layer aborts on
concurrent parallel launches) runs in a subprocess, so a failure is a failed
test, not a dead pytest.
"""

import importlib.metadata
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numba
import numpy as np
import pytest

from simplernn_numba import SimpleRNN, _threading

ROOT = Path(__file__).resolve().parents[1]
THREADS, CALLS = 8, 25

CONCURRENT_SCRIPT = textwrap.dedent(f"""
    import threading
    import numba
    import numpy as np
    from simplernn_numba import SimpleRNN

    rng = np.random.default_rng(0)
    # B*T*(F+U)*U above kernels.cpu.SERIAL_WORK: these calls run the parallel kernel
    layers = [SimpleRNN(32, return_sequences=True, seed=1),
              SimpleRNN(32, activation="relu", go_backwards=True, return_state=True, seed=2)]
    xs = [rng.standard_normal((32, 40, 16)).astype(np.float32) for _ in range({THREADS})]
    mask = rng.random((32, 40)) > 0.3
    calls = [(layer, i) for layer in layers for i in range({THREADS})]
    serial = {{}}
    for layer, i in calls:
        serial[id(layer), i] = layer(xs[i], mask=mask if i % 2 else None)
    failures = []

    def worker(i):
        for n in range({CALLS}):
            layer = layers[n % 2]
            got = layer(xs[i], mask=mask if i % 2 else None)
            want = serial[id(layer), i]
            got, want = (got, want) if isinstance(got, list) else ([got], [want])
            if not all(np.array_equal(g, w) for g, w in zip(got, want)):
                failures.append((i, n))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range({THREADS})]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("layer", numba.threading_layer(), "failures", len(failures))
""")


def run_script(script: str, **env) -> subprocess.CompletedProcess:
    """Run ``script`` in a fresh interpreter; an ``env`` value of None removes that variable."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=full_env, timeout=300)


@pytest.mark.parametrize("layer_env", [None, "workqueue"])
def test_concurrent_calls_equal_serial_calls(layer_env):
    """8 threads x 25 calls on shared layers give bit-identical results; workqueue is locked."""
    result = run_script(CONCURRENT_SCRIPT, NUMBA_THREADING_LAYER=layer_env, NUMBA_NUM_THREADS="2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "failures 0" in result.stdout, result.stdout
    if layer_env is not None:
        assert f"layer {layer_env}" in result.stdout


FUNCTIONAL_SCRIPT = textwrap.dedent(f"""
    import threading
    import numpy as np
    from simplernn_numba import functional as F

    rng = np.random.default_rng(1)
    weights = [rng.standard_normal((16, 32)) * 0.3, rng.standard_normal((32, 32)) * 0.1,
               rng.standard_normal(32) * 0.1]
    xs = [rng.standard_normal((32, 40, 16)) for _ in range({THREADS})]

    def run(i):
        out, state, cache = F.forward(xs[i], *weights, mask=rng_mask[i])
        grads = F.backward(cache, d_output=np.ones_like(out))
        return [out, state] + [g for g in grads.values() if g is not None]

    rng_mask = [np.random.default_rng(i).random((32, 40)) > 0.3 for i in range({THREADS})]
    serial = [run(i) for i in range({THREADS})]
    failures = []

    def worker(i):
        for _ in range({CALLS}):
            if not all(np.array_equal(a, b) for a, b in zip(run(i), serial[i])):
                failures.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range({THREADS})]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("failures", len(failures))
""")


def _has_functional_api() -> bool:
    """The functional module sits in this package (not found through another install's path)."""
    import simplernn_numba

    return (Path(simplernn_numba.__file__).parent / "functional.py").exists()


@pytest.mark.skipif(not _has_functional_api(), reason="no functional API yet")
@pytest.mark.parametrize("layer_env", [None, "workqueue"])
def test_concurrent_functional_forward_backward_equal_serial(layer_env):
    """Every parallel kernel launch (forward and backward) must go through parallel_section()."""
    result = run_script(FUNCTIONAL_SCRIPT, NUMBA_THREADING_LAYER=layer_env, NUMBA_NUM_THREADS="2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "failures 0" in result.stdout, result.stdout


def test_results_identical_with_one_and_two_numba_threads():
    script = textwrap.dedent("""
        import hashlib
        import numpy as np
        from simplernn_numba import SimpleRNN
        rng = np.random.default_rng(3)
        digest = hashlib.sha256()
        for dtype in ("float32",):  # float64 compiles the same code again: cold-cache CI time
            x = rng.standard_normal((41, 30, 16)).astype(dtype)  # above SERIAL_WORK: parallel kernel
            mask = rng.random((41, 30)) > 0.25
            for kw in ({}, {"go_backwards": True}, {"activation": "gelu", "dropout": 0.3,
                                                    "recurrent_dropout": 0.2}):
                layer = SimpleRNN(48, return_sequences=True, return_state=True, seed=5,
                                  dtype=dtype, **kw)
                layer.build(x.shape)
                layer.set_weights([rng.standard_normal(w.shape) for w in layer.get_weights()])
                outputs = layer(x, mask=mask, training=True)
                for out in outputs:
                    digest.update(np.ascontiguousarray(out).tobytes())
                grads = layer.backward(np.ones_like(outputs[0]))  # parallel BPTT and products
                for key in sorted(grads):
                    digest.update(np.ascontiguousarray(grads[key]).tobytes())
        print(digest.hexdigest())
    """)
    digests = []
    for threads in ("1", "2"):
        result = run_script(script, NUMBA_NUM_THREADS=threads)
        assert result.returncode == 0, result.stderr[-3000:]
        digests.append(result.stdout.strip())
    assert digests[0] == digests[1]


def test_stateful_layer_calls_are_serialised():
    """Each call advances the state once: the final state equals that of serial calls.

    A tiny switch interval makes the read-state / write-state race show up
    reliably when the per-layer lock is missing.
    """
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 4, 5)).astype(np.float64)
    shared = SimpleRNN(6, stateful=True, dtype="float64", seed=0)
    shared(x)
    serial = SimpleRNN.from_config(shared.get_config())
    serial.build((3, 4, 5))
    serial.set_weights(shared.get_weights())
    serial.reset_states(shared.states)

    def worker():
        for _ in range(CALLS):
            shared(x)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(previous)
    for _ in range(THREADS * CALLS):
        serial(x)
    np.testing.assert_array_equal(shared.states[0], serial.states[0])


def test_object_lock_is_per_object_and_reentrant():
    a, b = SimpleRNN(2), SimpleRNN(2)
    assert _threading.object_lock(a) is _threading.object_lock(a)
    assert _threading.object_lock(a) is not _threading.object_lock(b)
    with _threading.object_lock(a):
        with _threading.object_lock(a):
            pass


def test_parallel_section_locks_only_on_workqueue(monkeypatch):
    monkeypatch.setattr(_threading, "_layer", "workqueue")
    with _threading.parallel_section():
        assert _threading.WORKQUEUE_LOCK.locked()
    assert not _threading.WORKQUEUE_LOCK.locked()
    monkeypatch.setattr(_threading, "_layer", "tbb")
    with _threading.parallel_section():
        assert not _threading.WORKQUEUE_LOCK.locked()


def test_parallel_section_hands_out_iterations_one_at_a_time():
    """Chunk size 1 inside (runs go to whichever thread comes free), the caller's restored after,
    also when the launch raises."""
    previous = numba.set_parallel_chunksize(3)
    try:
        with _threading.parallel_section():
            assert numba.get_parallel_chunksize() == 1
        assert numba.get_parallel_chunksize() == 3
        with pytest.raises(RuntimeError), _threading.parallel_section():
            raise RuntimeError
        assert numba.get_parallel_chunksize() == 3
    finally:
        numba.set_parallel_chunksize(previous)


def _tbb_installed() -> bool:
    try:
        importlib.metadata.distribution("tbb")
    except importlib.metadata.PackageNotFoundError:
        return False
    return sys.platform.startswith("linux")


@pytest.mark.skipif(not _tbb_installed(), reason="the tbb package is not installed (Linux only)")
def test_pip_tbb_is_used_by_default():
    script = ("import numpy as np, numba\nfrom simplernn_numba import SimpleRNN\n"
              "SimpleRNN(32)(np.ones((32, 40, 16)))  # large enough for the parallel kernel\n"
              "print(numba.threading_layer())")
    result = run_script(script, NUMBA_THREADING_LAYER=None, NUMBA_NUM_THREADS="2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "tbb"
