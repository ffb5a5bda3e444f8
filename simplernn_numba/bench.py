"""Benchmark the SimpleRNN layer against NumPy, PyTorch, Keras, ONNX Runtime and JAX.

``python -m simplernn_numba.bench`` times our forward pass **through the public
layer call** (``layer(x)``: validation and dispatch included) and every
installed peer on the same weights and inputs in one run, checks each peer's
output against ours, and writes a Markdown table (median ms, our speed-up over
each peer, GFLOP/s and % of the sgemm roofline measured in the same run) and a
PNG plot. Peers that are not installed are skipped with a note. Install them
with the ``bench`` extra.

Warm-up calls are excluded from the timings; the first call of each
implementation (compilation or tracing) is reported separately, and
``--startup`` also reports our import + first call with a cold and a warm
Numba cache, each in a fresh interpreter.

>>> rows = run([Case(2, 3, 4, 5)], peers=("numpy",), rounds=1, progress=False)
>>> sorted(rows[0].timings)
['numpy', 'simplernn_numba']
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

OURS = "simplernn_numba"
#: (batch, timesteps, features, units) of ``shared/perf_anchors.md``.
GRID = ((32, 10, 8, 4), (1, 1000, 16, 64), (64, 100, 128, 128), (16, 500, 32, 32),
        (128, 200, 512, 512))
PEERS = ("numpy", "torch", "keras_tf_function", "keras_eager", "onnxruntime", "jax")
#: Set by ``--threads N`` (the CLI re-executes itself so that BLAS and XLA see it at import).
THREADS_ENV = "SIMPLERNN_BENCH_THREADS"


def _thread_env(threads: int) -> dict[str, str]:
    """Environment limiting every library in this process to ``threads`` threads."""
    n = str(threads)
    env = {THREADS_ENV: n, "OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n,
           "NUMBA_NUM_THREADS": n}
    if threads == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    return env


@dataclass(frozen=True)
class Case:
    """One benchmark problem: float32 tanh forward with ``return_sequences=True``."""

    batch: int
    steps: int
    features: int
    units: int
    dtype: str = "float32"
    masked: bool = False

    @property
    def label(self) -> str:
        extra = "" if self.dtype == "float32" else f" {self.dtype}"
        return f"{self.batch},{self.steps},{self.features},{self.units}{extra}" + (
            " masked" if self.masked else "")

    @property
    def flops(self) -> int:
        """Multiply-adds x2 of one forward call: projection plus recurrence."""
        return 2 * self.batch * self.steps * (self.features + self.units) * self.units


@dataclass
class Problem:
    """Inputs and weights shared by every implementation."""

    x: np.ndarray
    kernel: np.ndarray
    recurrent_kernel: np.ndarray
    bias: np.ndarray
    mask: np.ndarray | None


@dataclass
class Row:
    """Results for one case: median ms and first-call seconds per implementation."""

    case: Case
    timings: dict[str, float] = field(default_factory=dict)
    first_call: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    #: numpy sgemm 2048x2048 GFLOP/s timed in this case's rounds (``run(..., roofline=True)``)
    sgemm_gflops: float | None = None
    #: Number of timed calls per implementation.
    calls: dict[str, int] = field(default_factory=dict)


def default_cases() -> list[Case]:
    """The perf_anchors grid plus a float64 and a masked variant of 64,100,128,128."""
    return [Case(*g) for g in GRID] + [Case(64, 100, 128, 128, "float64"),
                                       Case(64, 100, 128, 128, masked=True)]


def make_problem(case: Case, seed: int = 0) -> Problem:
    """Random inputs and Keras-like weights for ``case``."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(case.dtype)
    f, u = case.features, case.units
    limit = np.sqrt(6.0 / (f + u))
    q, _ = np.linalg.qr(rng.normal(size=(u, u)))
    mask = None
    if case.masked:
        mask = rng.random((case.batch, case.steps)) > 0.2
        mask[:, 0] = True
    return Problem(
        x=rng.normal(size=(case.batch, case.steps, f)).astype(dt),
        kernel=rng.uniform(-limit, limit, size=(f, u)).astype(dt),
        recurrent_kernel=q.astype(dt),
        bias=(0.1 * rng.normal(size=u)).astype(dt),
        mask=mask,
    )


# ---------------------------------------------------------------------- implementations
# Each builder returns a callable that runs one forward pass and returns (B, T, U) as NumPy.
# It raises ImportError when the peer is not installed and NotImplementedError when the peer
# cannot express the case.

def _ours(p: Problem, case: Case) -> Callable[[], np.ndarray]:
    from .layer import SimpleRNN

    layer = SimpleRNN(case.units, return_sequences=True, dtype=case.dtype)
    layer.build(p.x.shape)
    layer.set_weights([p.kernel, p.recurrent_kernel, p.bias])
    x, mask = p.x, p.mask
    if mask is None:
        return lambda: layer(x)
    return lambda: layer(x, mask=mask)


def _numpy(p: Problem, case: Case) -> Callable[[], np.ndarray]:
    def run():
        xw = p.x @ p.kernel + p.bias
        h = np.zeros((case.batch, case.units), p.x.dtype)
        out = np.empty(xw.shape, p.x.dtype)
        for t in range(case.steps):
            h_new = np.tanh(xw[:, t] + h @ p.recurrent_kernel)
            if p.mask is not None:
                keep = p.mask[:, t, None]
                h_new = np.where(keep, h_new, h)
                out[:, t] = np.where(keep, h_new, out[:, t - 1] if t else 0)
            else:
                out[:, t] = h_new
            h = h_new
        return out
    return run


def torch_rnn(p: Problem, case: Case):
    """A ``torch.nn.RNN`` (batch_first) holding the problem's weights (the torch peer)."""
    import torch

    if p.mask is not None:
        raise NotImplementedError("torch.nn.RNN has no per-step mask")
    if THREADS_ENV in os.environ:
        torch.set_num_threads(int(os.environ[THREADS_ENV]))
    dt = torch.float32 if case.dtype == "float32" else torch.float64
    rnn = torch.nn.RNN(case.features, case.units, batch_first=True).to(dt)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(p.kernel.T.copy()))
        rnn.weight_hh_l0.copy_(torch.from_numpy(p.recurrent_kernel.T.copy()))
        rnn.bias_ih_l0.copy_(torch.from_numpy(p.bias))
        rnn.bias_hh_l0.zero_()
    return rnn


def _torch(p: Problem, case: Case) -> Callable[[], np.ndarray]:
    import torch

    rnn = torch_rnn(p, case)
    x = torch.from_numpy(p.x)

    def run():
        with torch.inference_mode():
            return rnn(x)[0].numpy()
    return run


def _keras_layer(p: Problem, case: Case):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    import tf_keras

    if THREADS_ENV in os.environ and not tf.config.threading.get_intra_op_parallelism_threads():
        tf.config.threading.set_intra_op_parallelism_threads(int(os.environ[THREADS_ENV]))
        tf.config.threading.set_inter_op_parallelism_threads(1)

    layer = tf_keras.layers.SimpleRNN(case.units, return_sequences=True, dtype=case.dtype)
    layer.build(p.x.shape)
    layer.set_weights([p.kernel, p.recurrent_kernel, p.bias])
    x = tf.constant(p.x)
    mask = None if p.mask is None else tf.constant(p.mask)
    return tf, layer, x, mask


def _keras_tf_function(p: Problem, case: Case) -> Callable[[], np.ndarray]:
    tf, layer, x, mask = _keras_layer(p, case)
    fn = tf.function(lambda x, mask: layer(x, mask=mask))
    return lambda: fn(x, mask).numpy()


#: Eager Keras runs the recurrence op by op from Python; above this many FLOPs a call takes
#: many seconds, so it is left out of the timings.
EAGER_MAX_FLOPS = 1e9


def _keras_eager(p: Problem, case: Case) -> Callable[[], np.ndarray]:
    if case.flops > EAGER_MAX_FLOPS:
        raise NotImplementedError(f"eager Keras is not timed above {EAGER_MAX_FLOPS:.0e} FLOPs")
    _, layer, x, mask = _keras_layer(p, case)
    return lambda: layer(x, mask=mask).numpy()


def _onnxruntime(p: Problem, case: Case) -> Callable[[], np.ndarray]:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    if p.mask is not None:
        raise NotImplementedError("the ONNX RNN operator has no per-step mask")
    if case.dtype != "float32":
        raise NotImplementedError("ONNX Runtime's CPU RNN kernel is float32 only")
    u = case.units
    inits = [
        numpy_helper.from_array(p.kernel.T[None].copy(), "W"),
        numpy_helper.from_array(p.recurrent_kernel.T[None].copy(), "R"),
        numpy_helper.from_array(np.concatenate([p.bias, np.zeros_like(p.bias)])[None], "B"),
    ]
    node = helper.make_node("RNN", ["X", "W", "R", "B"], ["Y"], hidden_size=u,
                            activations=["Tanh"])
    graph = helper.make_graph(
        [node], "simplernn",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [case.steps, case.batch,
                                                                case.features])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [case.steps, 1, case.batch, u])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = min(model.ir_version, 9)
    onnx.checker.check_model(model)
    options = ort.SessionOptions()
    if THREADS_ENV in os.environ:
        options.intra_op_num_threads = int(os.environ[THREADS_ENV])
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    x = p.x

    def run():
        y = session.run(None, {"X": np.ascontiguousarray(x.transpose(1, 0, 2))})[0]
        return np.ascontiguousarray(y[:, 0].transpose(1, 0, 2))
    return run


def jax_rnn(x, kernel, recurrent_kernel, bias, mask):
    """The masked tanh RNN as one einsum plus ``lax.scan`` (the JAX peer, not jitted)."""
    import jax
    import jax.numpy as jnp

    xw = jnp.einsum("btf,fu->tbu", x, kernel) + bias
    h0 = jnp.zeros((x.shape[0], kernel.shape[1]), x.dtype)

    def step(carry, inputs):
        h, prev = carry
        xw_t, m = inputs
        h_new = jnp.tanh(xw_t + h @ recurrent_kernel)
        keep = m[:, None]
        h = jnp.where(keep, h_new, h)
        out = jnp.where(keep, h_new, prev)
        return (h, out), out

    _, ys = jax.lax.scan(step, (h0, h0), (xw, mask.T))
    return jnp.swapaxes(ys, 0, 1)


def _jax(p: Problem, case: Case) -> Callable[[], np.ndarray]:
    import jax

    if case.dtype == "float64":
        jax.config.update("jax_enable_x64", True)

    fwd = jax.jit(jax_rnn)

    mask = np.ones(p.x.shape[:2], bool) if p.mask is None else p.mask
    args = [jax.device_put(a) for a in (p.x, p.kernel, p.recurrent_kernel, p.bias, mask)]
    return lambda: np.asarray(fwd(*args))


BUILDERS: dict[str, Callable[[Problem, Case], Callable[[], np.ndarray]]] = {
    OURS: _ours, "numpy": _numpy, "torch": _torch, "keras_tf_function": _keras_tf_function,
    "keras_eager": _keras_eager, "onnxruntime": _onnxruntime, "jax": _jax,
}


# ---------------------------------------------------------------------- timing
def median_seconds(fn: Callable[[], object], repeat: int, budget_s: float = 2.0) -> float:
    """Median wall time of ``fn()`` over ``repeat`` calls (fewer if ``budget_s`` runs out, >= 3)."""
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < repeat and (len(times) < 3 or time.perf_counter() < deadline):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


#: Seconds of consecutive calls one implementation gets per round of :func:`run`.
BLOCK_S = 0.05
#: Fewest rounds of :func:`run` an implementation is timed in (unless its budget runs out).
ROUNDS = 10


#: Longest wait (s) for the process to go quiet before a block (see :func:`_wait_until_idle`).
QUIET_WAIT_S = 0.5


def _wait_until_idle(limit_s: float = QUIET_WAIT_S, slice_s: float = 0.005) -> float:
    """Sleep until the process's other threads use under a tenth of a core; returns the wait.

    Thread pools keep spinning after a library's call returns (OpenBLAS for about
    0.1 s), and that takes cores from whichever implementation runs next, most of all
    from one that needs every core at once; the wait gives each block a quiet start.
    """
    start = time.perf_counter()
    while time.perf_counter() - start < limit_s:
        cpu = time.process_time()
        time.sleep(slice_s)
        if time.process_time() - cpu < 0.1 * slice_s:
            break
    return time.perf_counter() - start


def _block(fn: Callable[[], object]) -> list[float]:
    """Times of the consecutive calls of ``fn`` that fit in about :data:`BLOCK_S` (>= 1).

    The block starts once the process is idle (:func:`_wait_until_idle`). When a call is
    short enough for several per block, one untimed call goes first: it pays for what the
    previous implementation left behind (evicted caches, cold thread pools), which is not
    this implementation's cost. The block lasts :data:`BLOCK_S` however short the calls,
    so the slower calls right after the idle wait are a small share of a short call's times.
    """
    _wait_until_idle()
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    if first >= BLOCK_S / 2:
        return [first]
    times: list[float] = []
    end = time.perf_counter() + BLOCK_S
    while not times or time.perf_counter() < end:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


#: Size of the square float32 matrix product whose rate is the roofline.
SGEMM_N = 2048
#: The roofline's name in :func:`run`'s rounds (never a peer).
ROOFLINE = "sgemm"


def _sgemm(n: int = SGEMM_N) -> Callable[[], np.ndarray]:
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    return lambda: a @ a


def sgemm_gflops(n: int = SGEMM_N, repeat: int = 5) -> float:
    """GFLOP/s of NumPy's float32 matrix product on (n, n) @ (n, n): the roofline used here."""
    fn = _sgemm(n)
    fn()
    return 2 * n**3 / median_seconds(fn, repeat) / 1e9


def _tolerance(dtype: str) -> dict:
    return dict(rtol=1e-9, atol=1e-9) if dtype == "float64" else dict(rtol=1e-4, atol=1e-4)


def assert_close(out, expected, rtol: float, atol: float) -> None:
    """``out`` matches ``expected`` (an array or a tuple of arrays, such as gradients).

    ``atol`` is relative to the largest magnitude in each expected array when that exceeds 1
    (outputs in [-1, 1] keep the plain absolute tolerance; gradients scale with B*T).
    """
    pairs = zip(out, expected, strict=True) if isinstance(expected, tuple) else [(out, expected)]
    for o, e in pairs:
        scale = max(1.0, float(np.abs(e).max(initial=0.0)))
        np.testing.assert_allclose(o, e, rtol=rtol, atol=atol * scale)


def run(cases: Sequence[Case], peers: Sequence[str] = PEERS, repeat: int = 30,
        budget_s: float = 2.0, progress: bool = True, rounds: int = ROUNDS,
        builders: dict[str, Callable[[Problem, Case], Callable[[], np.ndarray]]] | None = None,
        tolerance: Callable[[Case], dict] | None = None, roofline: bool = False) -> list[Row]:
    """Time ours and each peer on every case; returns one :class:`Row` per case.

    ``builders`` maps implementation names to builders (default :data:`BUILDERS`,
    forward inference); another mode, such as a training step, is another such dict
    (:data:`simplernn_numba.bench_train.TRAIN_BUILDERS`), whose callables may return a
    tuple of arrays. ``tolerance(case)`` gives the ``rtol``/``atol`` of the check against
    ours (default: 1e-4 for float32, 1e-9 for float64; see :func:`assert_close`).

    Every implementation is built, called once (first-call time, output check)
    and then timed in interleaved rounds, so that load from other processes and the
    host's changes of speed fall on all of them alike; in each round each
    implementation runs one block of consecutive calls (see :func:`_block`), and its
    time is the median of all its timed calls. An implementation leaves the rounds
    once it has been in ``rounds`` of them and has ``repeat`` timed calls, or once its
    calls add up to ``budget_s`` seconds and it has 3.
    A peer whose output differs from ours beyond float tolerance is reported in
    ``notes`` and not timed. With ``roofline``, NumPy's sgemm on 2048x2048 takes part
    in every case's rounds too, and its rate is the row's ``sgemm_gflops``: the
    roofline then moves with the machine's speed, as the timings do.
    """
    builders = BUILDERS if builders is None else builders
    tol = tolerance or (lambda case: _tolerance(case.dtype))
    if roofline:
        sgemm_fn = _sgemm()
        sgemm_fn()
    rows = []
    for case in cases:
        row = Row(case)
        problem = make_problem(case)
        expected = None
        ready: dict[str, Callable[[], np.ndarray]] = {}
        for name in (OURS, *peers):
            if progress:
                print(f"[{case.label}] {name} ...", end=" ", flush=True, file=sys.stderr)
            try:
                fn = builders[name](problem, case)
                start = time.perf_counter()
                out = fn()
                row.first_call[name] = time.perf_counter() - start
                if expected is None:
                    expected = out
                else:
                    assert_close(out, expected, **tol(case))
                ready[name] = fn
                message = f"first call {row.first_call[name]:.3f} s"
            except ImportError as exc:
                row.notes[name] = f"not installed ({exc.name})"
                message = row.notes[name]
            except NotImplementedError as exc:
                row.notes[name] = str(exc)
                message = row.notes[name]
            except AssertionError as exc:
                row.notes[name] = "output differs from ours: " + str(exc).strip().splitlines()[-1]
                message = row.notes[name]
            if progress:
                print(message, file=sys.stderr, flush=True)
        if roofline:
            ready[ROOFLINE] = sgemm_fn
        samples: dict[str, list[float]] = {name: [] for name in ready}
        active, done = list(ready), 0
        while active:
            for name in active:
                samples[name] += _block(ready[name])
            done += 1
            active = [n for n in active if (done < rounds or len(samples[n]) < repeat)
                      and (len(samples[n]) < 3 or sum(samples[n]) < budget_s)]
        row.timings = {name: 1e3 * float(np.median(ts)) for name, ts in samples.items()}
        row.calls = {name: len(ts) for name, ts in samples.items() if name != ROOFLINE}
        if roofline:
            row.sgemm_gflops = 2 * SGEMM_N**3 / row.timings.pop(ROOFLINE) / 1e6
        if progress:
            print(f"[{case.label}] median ms: " + ", ".join(
                f"{n} {t:.3f} ({row.calls[n]} calls)" for n, t in row.timings.items())
                + (f"; sgemm {row.sgemm_gflops:.1f} GFLOP/s" if row.sgemm_gflops else ""),
                file=sys.stderr, flush=True)
        rows.append(row)
    return rows


# ---------------------------------------------------------------------- reporting
def markdown(rows: Sequence[Row], gflops: float | None = None, flops_factor: int = 1) -> str:
    """Markdown table: median ms per implementation, our speed-up over each, GFLOP/s, % roofline.

    ``flops_factor`` scales :attr:`Case.flops` (3 for a forward + backward training step).
    The roofline of a row is its own ``sgemm_gflops`` when it has one, else ``gflops``.
    """
    names = [OURS] + list(dict.fromkeys(n for r in rows for n in (*r.timings, *r.notes) if n != OURS))
    head = ["B,T,F,U", *[f"{n} ms" for n in names], "best peer", "speed-up vs best",
            "ours GFLOP/s"]
    roofline = bool(gflops) or any(r.sgemm_gflops for r in rows)
    if roofline:
        head += ["sgemm GFLOP/s", "sgemm roofline ms", "% of roofline"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        ours = row.timings.get(OURS)
        cells = [row.case.label]
        for n in names:
            if n in row.timings:
                ms = row.timings[n]
                ratio = "" if n == OURS or ours is None else f" ({ms / ours:.2f}x)"
                cells.append(f"{ms:.3f}{ratio}")
            else:
                cells.append("n/a")
        peers = {n: t for n, t in row.timings.items() if n != OURS}
        if peers and ours:
            best = min(peers, key=peers.get)
            cells += [f"{best} {peers[best]:.3f}", f"{peers[best] / ours:.2f}x"]
        else:
            cells += ["n/a", "n/a"]
        flops = flops_factor * row.case.flops
        cells.append(f"{flops / ours / 1e6:.1f}" if ours else "n/a")
        rate = row.sgemm_gflops or gflops
        if roofline and rate:
            roof = flops / rate / 1e6
            cells += [f"{rate:.0f}", f"{roof:.3f}", f"{100 * roof / ours:.0f}%" if ours else "n/a"]
        elif roofline:
            cells += ["n/a"] * 3
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Cells: median ms per call (warm); in brackets, that peer's time / ours "
                 "(> 1 means we are faster).")
    notes = sorted({f"{n}: {msg}" for r in rows for n, msg in r.notes.items()})
    if notes:
        lines += ["", "Skipped:"] + [f"- {n}" for n in notes]
    first = [f"{r.case.label}: " + ", ".join(f"{n} {s:.2f}" for n, s in r.first_call.items())
             for r in rows]
    lines += ["", "First call (s, compilation/tracing, excluded above):"] + [f"- {f}" for f in first]
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[Row], path: Path, what: str = "forward") -> None:
    """Grouped bar chart of median ms (log scale) per case and implementation.

    ``what`` names the timed call in the labels ("forward" or "training step").
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [OURS] + list(dict.fromkeys(n for r in rows for n in r.timings if n != OURS))
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for i, name in enumerate(names):
        xs = [j + i * width for j, r in enumerate(rows) if name in r.timings]
        ys = [r.timings[name] for r in rows if name in r.timings]
        ax.bar(xs, ys, width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(rows))])
    ax.set_xticklabels([r.case.label.replace(" ", "\n") for r in rows], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel(f"median ms per {what} call (lower is better)")
    ax.set_title(f"SimpleRNN {what} (tanh, return_sequences=True) by B,T,F,U; float32 unless noted")
    ax.legend(fontsize=8, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


_STARTUP_SCRIPT = """
import time
start = time.perf_counter()
import numpy as np
from simplernn_numba import SimpleRNN
imported = time.perf_counter()
SimpleRNN(4, return_sequences=True)(np.ones((32, 10, 8), np.float32))
print(imported - start, time.perf_counter() - imported)
"""


def startup_times() -> dict[str, tuple[float, float]]:
    """(import s, first call s) in fresh interpreters with a cold, then warm, Numba cache."""
    results = {}
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as cache:
        env["NUMBA_CACHE_DIR"] = cache
        for label in ("cold cache", "warm cache"):
            out = subprocess.run([sys.executable, "-c", _STARTUP_SCRIPT], env=env, check=True,
                                 capture_output=True, text=True).stdout.split()
            results[label] = (float(out[0]), float(out[1]))
    return results


def parse_case(text: str) -> Case:
    """``"B,T,F,U"`` with optional ``",float64"`` and/or ``",masked"`` suffixes."""
    parts = text.split(",")
    dims = [int(v) for v in parts[:4]]
    extra = parts[4:]
    return Case(*dims, dtype="float64" if "float64" in extra else "float32",
                masked="masked" in extra)


def main(argv: Sequence[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(prog="python -m simplernn_numba.bench", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("--case", action="append", type=parse_case,
                        help="B,T,F,U[,float64][,masked]; repeatable (default: the grid + "
                             "float64 + masked cases)")
    parser.add_argument("--skip-large", action="store_true", help="drop cases above 1 GFLOP")
    parser.add_argument("--peers", default=None,
                        help=f"comma-separated subset of {','.join(PEERS)} (or 'none'); with "
                             "--train, of numpy,torch,jax (default: all)")
    parser.add_argument("--train", action="store_true",
                        help="time a training step (forward + backward, gradients checked) instead "
                             "of the forward pass; writes bench_train.md and bench_train.png")
    parser.add_argument("--repeat", type=int, default=30,
                        help="fewest timed calls per implementation and case")
    parser.add_argument("--rounds", type=int, default=ROUNDS,
                        help="fewest interleaved rounds per implementation and case (each round "
                             f"times a block of about {BLOCK_S * 1e3:.0f} ms of calls)")
    parser.add_argument("--budget", type=float, default=2.0,
                        help="seconds per measurement before stopping early (>= 3 calls)")
    parser.add_argument("--out-dir", type=Path, default=Path("."),
                        help="where bench.md and bench.png go")
    parser.add_argument("--no-plot", action="store_true")
    parser.add_argument("--no-roofline", action="store_true", help="skip the sgemm measurement")
    parser.add_argument("--threads", type=int, default=None,
                        help="limit every implementation (BLAS, Numba, torch, TF, ORT, XLA) to N "
                             "threads; default: each library's own default (all cores)")
    parser.add_argument("--startup", action="store_true",
                        help="also time import + first call with a cold and a warm Numba cache")
    args = parser.parse_args(argv)
    if args.threads and os.environ.get(THREADS_ENV) != str(args.threads):
        os.environ.update(_thread_env(args.threads))
        argv = sys.argv[1:] if argv is None else list(argv)
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, "-m", "simplernn_numba.bench", *argv])
    cases = args.case or default_cases()
    if args.skip_large:
        cases = [c for c in cases if c.flops <= 1e9]
    builders, tolerance, flops_factor, stem, known = BUILDERS, None, 1, "bench", PEERS
    if args.train:
        from . import bench_train

        builders, tolerance, flops_factor = (bench_train.TRAIN_BUILDERS, bench_train.tolerance,
                                             bench_train.FLOPS_FACTOR)
        stem, known = "bench_train", bench_train.PEERS
    peers_arg = ",".join(known) if args.peers is None else args.peers
    peers = [] if peers_arg == "none" else [p for p in peers_arg.split(",") if p]
    unknown = set(peers) - set(known)
    if unknown:
        parser.error(f"unknown peers {sorted(unknown)}; choose from {known}")
    gflops = None
    if not args.no_roofline:
        gflops = sgemm_gflops()
        print(f"numpy sgemm 2048x2048: {gflops:.1f} GFLOP/s", file=sys.stderr)
    load_before = os.getloadavg()[0]
    rows = run(cases, peers, args.repeat, args.budget, rounds=args.rounds, builders=builders,
               tolerance=tolerance, roofline=gflops is not None)
    text = markdown(rows, gflops, flops_factor)
    text += (f"\nTimings: each implementation in at least {args.rounds} interleaved rounds of "
             f"about {BLOCK_S * 1e3:.0f} ms of consecutive calls (>= {args.repeat} calls; fewer "
             f"once its calls add up to {args.budget:g} s); the median over all its timed calls.\n")
    threads = os.environ.get(THREADS_ENV)
    text += f"\nThreads: {threads + ' per library' if threads else 'each library default'}.\n"
    text += (f"\nLoad average (1 min) before / after the timings: {load_before:.2f} / "
             f"{os.getloadavg()[0]:.2f}.\n")
    if args.train:
        text += ("\nTraining step: ours is `layer(x, training=True)` + `layer.backward(d_output)`; "
                 "gradients (inputs, kernel, recurrent_kernel, bias) checked against ours; "
                 f"FLOPs counted as {flops_factor}x the forward pass.\n")
    if gflops:
        text += (f"\nRoofline: numpy sgemm on 2048x2048, timed in each case's interleaved rounds "
                 f"(column 'sgemm GFLOP/s'); {gflops:.1f} GFLOP/s before the cases.\n")
    if args.startup:
        lines = [f"- {k}: import {i:.2f} s, first call {c:.2f} s"
                 for k, (i, c) in startup_times().items()]
        text += "\nImport + first call in a fresh interpreter:\n" + "\n".join(lines) + "\n"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{stem}.md").write_text(text)
    print(text)
    if not args.no_plot:
        try:
            plot(rows, args.out_dir / f"{stem}.png", "training step" if args.train else "forward")
        except ImportError:
            print("matplotlib is not installed: no plot", file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
