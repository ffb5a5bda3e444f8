"""Dask batch inference: a 2-process local cluster gives the in-memory result."""

import numpy as np
import pytest

from simplernn_numba import Bidirectional, SimpleRNN

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
from simplernn_numba.interop.dask import predict  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       dashboard_address=":0")
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


def _built(layer, features, seed=0):
    rng = np.random.default_rng(seed)
    layer.build((None, None, features))
    layer.set_weights([rng.normal(scale=0.4, size=w.shape) for w in layer.weights])
    return layer


def test_cluster_result_equals_in_memory_call(client):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(23, 6, 4)).astype(np.float32)
    mask = rng.random((23, 6)) > 0.2
    cases = [
        (_built(SimpleRNN(5, return_sequences=True), 4), None),
        (_built(SimpleRNN(5, activation="relu", go_backwards=True), 4), mask),
        (_built(Bidirectional(SimpleRNN(3, return_sequences=True)), 4), mask),
    ]
    # chunked along time and features too: predict rechunks those to one chunk
    lazy_x = da.from_array(x, chunks=(5, 3, 2))
    for layer, m in cases:
        expected = layer(x, mask=m)  # compiles here first, so the workers load the kernels from the cache
        y = predict(layer, lazy_x, mask=None if m is None else da.from_array(m, chunks=(7, 6)))
        assert y.chunks[0] == (5, 5, 5, 5, 3)
        # equal to float rounding, not bit for bit: chunks of fewer than cpu.LANES_MIN_BATCH
        # rows run on the per-row kernel, the whole batch with the rows as vector lanes
        np.testing.assert_allclose(client.compute(y).result(), expected, rtol=1e-6, atol=1e-6)
    workers = client.run(lambda: __import__("os").getpid())
    assert len(set(workers.values())) == 2


def test_numpy_mask_and_lazy_build():
    x = np.random.default_rng(2).normal(size=(8, 3, 2))
    layer = SimpleRNN(4)
    mask = np.ones((8, 3), bool)
    mask[:, -1] = False
    y = predict(layer, da.from_array(x, chunks=(3, 3, 2)), mask=mask)
    assert layer.built
    np.testing.assert_allclose(y.compute(scheduler="synchronous"), layer(x, mask=mask),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("layer,match", [
    (SimpleRNN(2, stateful=True), "stateful"),
    (SimpleRNN(2, return_state=True), "several arrays"),
    (Bidirectional(SimpleRNN(2), merge_mode=None), "several arrays"),
])
def test_refused_layers(layer, match):
    with pytest.raises(ValueError, match=match):
        predict(layer, da.zeros((4, 3, 2), chunks=2))


def test_refused_inputs():
    with pytest.raises(TypeError, match="dask.array.Array"):
        predict(SimpleRNN(2), np.zeros((4, 3, 2)))
    with pytest.raises(ValueError, match="3-D"):
        predict(SimpleRNN(2), da.zeros((4, 3), chunks=2))
    with pytest.raises(ValueError, match="mask must have shape"):
        predict(SimpleRNN(2), da.zeros((4, 3, 2), chunks=2), mask=np.ones((4, 2), bool))


def test_the_docs_snippet_runs_as_a_script_with_port_8787_taken(tmp_path):
    """The Dask block of docs/interop.md pasted into a script: the worker processes import it
    (so it needs its ``__main__`` guard), and the scheduler's web server does not ask for the
    dashboard's default port (taken here)."""
    import os
    import re
    import socket
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    text = (root / "docs" / "interop.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"^```python\n(.*?)^```", text, re.M | re.S) if "LocalCluster" in b]
    script = tmp_path / "snippet.py"
    script.write_text(block)
    path = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path)
    with socket.socket() as taken:
        try:
            taken.bind(("", 8787))
            taken.listen()
        except OSError:
            pass  # already taken by someone else: as good
        result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                                text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "already in use" not in result.stderr and "bootstrapping" not in result.stderr, result.stderr
