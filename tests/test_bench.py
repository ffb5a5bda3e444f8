"""Smoke tests of the benchmark harness (``python -m simplernn_numba.bench``): no timings checked."""

import contextlib
from pathlib import Path

import numpy as np
import pytest

from simplernn_numba import bench
from simplernn_numba.bench import cases, timing
from simplernn_numba.bench import training as bench_train
from simplernn_numba.bench.peers import THREADS_ENV


def test_cli_writes_table_with_ratio_and_roofline(tmp_path, capsys):
    rows = bench.main(["--case", "3,4,5,6", "--case", "2,3,4,5,float64,masked", "--peers", "numpy",
                       "--rounds", "1", "--out-dir", str(tmp_path), "--no-plot"])
    text = (tmp_path / "bench.md").read_text()
    assert [r.case.label for r in rows] == ["3,4,5,6", "2,3,4,5 float64 masked"]
    assert set(rows[0].timings) == {"simplernn_numba", "numpy"}
    assert "| 3,4,5,6 |" in text and "% of roofline" in text and "speed-up vs best" in text
    assert all(r.sgemm_gflops > 0 for r in rows)  # timed in each case's rounds, not a peer
    assert "GFLOP/s" in capsys.readouterr().err


def test_roofline_of_a_row_is_the_sgemm_rate_of_its_own_rounds():
    case = bench.Case(10, 10, 10, 10)  # 40,000 FLOPs
    slow = bench.Row(case, timings={bench.OURS: 0.002}, sgemm_gflops=20.0)
    fast = bench.Row(case, timings={bench.OURS: 0.002}, sgemm_gflops=40.0)
    text = bench.markdown([slow, fast], gflops=1000.0)
    assert "| 20 | 0.002 | 100% |" in text and "| 40 | 0.001 | 50% |" in text
    unmeasured = bench.Row(case, timings={bench.OURS: 1.0})
    assert "| n/a | n/a | n/a |" in bench.markdown([slow, unmeasured])
    assert "roofline" not in bench.markdown([unmeasured])


def test_peer_with_wrong_output_is_reported_not_timed(monkeypatch):
    def wrong(problem, case):
        return lambda: np.zeros((case.batch, case.steps, case.units), problem.x.dtype) + 1
    monkeypatch.setitem(bench.BUILDERS, "numpy", wrong)
    (row,) = bench.run([bench.Case(2, 3, 4, 5)], peers=("numpy",), rounds=1, progress=False)
    assert "numpy" not in row.timings
    assert row.notes["numpy"].startswith("output differs from ours")


def test_missing_peer_is_skipped_with_a_note(monkeypatch):
    def missing(problem, case):
        raise ImportError("no module", name="somepeer")
    monkeypatch.setitem(bench.BUILDERS, "torch", missing)
    (row,) = bench.run([bench.Case(2, 3, 4, 5)], peers=("torch",), rounds=1, progress=False)
    assert row.notes == {"torch": 'not installed (somepeer; pip install -e ".[bench]")'}
    assert '- torch: not installed (somepeer; pip install -e ".[bench]")' in bench.markdown([row])


def test_masked_numpy_peer_matches_layer():
    case = bench.Case(3, 6, 4, 5, masked=True)
    problem = bench.case_problem(case)
    ours = bench.BUILDERS[bench.OURS](problem, case)()
    np.testing.assert_allclose(bench.BUILDERS["numpy"](problem, case)(), ours, rtol=1e-5, atol=1e-6)


def test_parse_case_and_unknown_peer():
    assert cases.parse_case("1,2,3,4,float64") == bench.Case(1, 2, 3, 4, "float64")
    with pytest.raises(SystemExit):
        bench.main(["--peers", "nope", "--no-roofline"])


def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    rows = bench.run([bench.Case(2, 3, 4, 5)], peers=("numpy",), rounds=1, progress=False)
    bench.plot(rows, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


# ---------------------------------------------------------------------- training mode (--train)
def test_train_cli_checks_gradients_and_skips_missing_peers(tmp_path, monkeypatch):
    def missing(problem, case):
        raise ImportError("no module", name="torch")
    monkeypatch.setitem(bench_train.TRAIN_BUILDERS, "torch", missing)
    rows = bench.main(["--train", "--case", "3,4,5,6", "--case", "2,3,4,5,float64,masked",
                       "--peers", "numpy,torch", "--rounds", "1", "--out-dir", str(tmp_path),
                       "--no-plot", "--no-roofline"])
    text = (tmp_path / "bench_train.md").read_text()
    assert set(rows[0].timings) == {"simplernn_numba", "numpy"}
    assert rows[1].notes == {"torch": 'not installed (torch; pip install -e ".[bench]")'}
    assert "| 3,4,5,6 |" in text and "- torch: not installed (torch" in text
    assert "layer.backward(d_output)" in text


def test_train_step_returns_layer_gradients():
    case = bench.Case(3, 5, 4, 6)
    problem = bench.case_problem(case)
    grads = bench_train.TRAIN_BUILDERS[bench.OURS](problem, case)()
    assert [g.shape for g in grads] == [(3, 5, 4), (4, 6), (6, 6), (6,)]
    cases.assert_close(bench_train.TRAIN_BUILDERS["numpy"](problem, case)(), grads, rtol=1e-4, atol=1e-5)


def test_train_peer_with_wrong_gradient_is_reported(monkeypatch):
    numpy_step = bench_train.TRAIN_BUILDERS["numpy"]

    def wrong(problem, case):
        run = numpy_step(problem, case)
        return lambda: tuple(2 * g for g in run())
    monkeypatch.setitem(bench_train.TRAIN_BUILDERS, "numpy", wrong)
    (row,) = bench.run([bench.Case(2, 3, 4, 5)], peers=("numpy",), rounds=1, progress=False,
                       builders=bench_train.TRAIN_BUILDERS, tolerance=bench_train.tolerance)
    assert row.notes["numpy"].startswith("output differs from ours")


@pytest.mark.parametrize("peer", ["torch", "jax"])
def test_train_peer_gradients_match_ours(peer):
    pytest.importorskip(peer)
    case = bench.Case(3, 6, 4, 5)
    problem = bench.case_problem(case)
    ours = bench_train.TRAIN_BUILDERS[bench.OURS](problem, case)()
    cases.assert_close(bench_train.TRAIN_BUILDERS[peer](problem, case)(), ours, rtol=1e-4, atol=1e-5)


def test_blocks_wait_while_another_thread_is_busy():
    import threading
    import time

    def spin(seconds):
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    busy = threading.Thread(target=spin, args=(0.2,))
    busy.start()
    waited = timing._wait_until_idle(limit_s=5.0)
    busy.join()
    assert 0.1 < waited < 5.0  # waited for the spinning thread, not for the limit
    assert timing._wait_until_idle(limit_s=5.0) < 5.0  # an idle process goes on at once


def test_every_implementation_is_timed_in_interleaved_rounds(monkeypatch):
    order = []

    def fake_block(fn):
        order.append(fn.name)
        return [fn.seconds] * fn.calls

    def builder(name, seconds, calls):
        def build(problem, case):
            def fn():
                return bench.BUILDERS[bench.OURS](problem, case)()
            fn.name, fn.seconds, fn.calls = name, seconds, calls
            return fn
        return build

    monkeypatch.setattr(timing, "_block", fake_block)
    builders = {bench.OURS: builder("ours", 1e-5, 1000), "short": builder("short", 1e-5, 1000),
                "long": builder("long", 0.5, 1)}
    (row,) = bench.run([bench.Case(2, 3, 4, 5)], peers=("short", "long"), rounds=4, repeat=30,
                       budget_s=2.0, progress=False, builders=builders)
    # short calls: 4 rounds although the first block already held `repeat` calls;
    # the long one leaves once its calls add up to the budget (4 x 0.5 s), in the same rounds
    assert order == ["ours", "short", "long"] * 4
    assert row.calls == {bench.OURS: 4000, "short": 4000, "long": 4}
    (row,) = bench.run([bench.Case(2, 3, 4, 5)], peers=("long",), rounds=2, repeat=30,
                       budget_s=1.0, progress=False, builders=builders)
    assert row.calls == {bench.OURS: 2000, "long": 3}  # budget spent, but at least 3 calls


def test_a_block_of_short_calls_lasts_its_time_slice():
    calls = []
    times = timing._block(lambda: calls.append(1))
    assert len(calls) == len(times) + 1  # one untimed call first
    assert len(times) > 100 and sum(times) < timing.BLOCK_S
    slow = timing._block(lambda: __import__("time").sleep(timing.BLOCK_S))
    assert len(slow) == 1  # one call as long as the block: timed alone


# ---------------------------------------------------------- --neighbour and --per-step modes
def _process_state(pid):
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_busy_neighbour_spins_only_inside_running_and_ends_on_close():
    from simplernn_numba.bench.neighbour import BusyNeighbour

    with BusyNeighbour() as neighbour:
        pid = neighbour._process.pid
        assert _process_state(pid) == "T" and not neighbour.spinning()  # stopped
        with neighbour.running():
            assert _process_state(pid) == "R" and neighbour.spinning()
        assert _process_state(pid) == "T"
    assert neighbour._process.poll() is not None  # ended


def test_run_with_a_neighbour_times_every_implementation_both_ways(monkeypatch):
    events = []

    class Neighbour:
        @contextlib.contextmanager
        def running(self):
            events.append("start")
            yield
            events.append("stop")

    monkeypatch.setattr(timing, "_block", lambda fn: events.append("block") or [1e-3])
    (row,) = bench.run([bench.Case(2, 3, 4, 5)], peers=("numpy",), rounds=2, repeat=1,
                       progress=False, neighbour=Neighbour())
    assert set(row.busy) == set(row.timings) == {bench.OURS, "numpy"}
    assert events == ["block", "start", "block", "stop"] * 4  # each quiet block, then a busy one
    assert row.plan and row.plan.split(",")[0] in ("lanes", "rows", "one_row", "two_rows")


def test_neighbour_cli_writes_quiet_and_busy_columns(tmp_path):
    rows = bench.main(["--neighbour", "--case", "3,4,5,6", "--peers", "numpy", "--rounds", "1",
                       "--repeat", "1", "--out-dir", str(tmp_path), "--no-roofline"])
    text = (tmp_path / "bench_neighbour.md").read_text()
    assert set(rows[0].busy) == {bench.OURS, "numpy"}
    assert "simplernn_numba quiet / busy ms (ratio)" in text and "| 3,4,5,6 | rows, 1 run |" in text
    assert "ideal ratio is" in text


def test_per_step_cli_reports_the_fma_bound_on_one_thread(tmp_path, monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "1")  # as after --per-step's re-execution with one thread
    rows = bench.main(["--per-step", "--case", "1,20,3,8", "--case", "2,20,3,8", "--peers", "none",
                       "--rounds", "1", "--repeat", "1", "--out-dir", str(tmp_path)])
    text = (tmp_path / "bench_per_step.md").read_text()
    assert [r.plan for r in rows] == ["one_row, 1 run", "two_rows, 1 run"]
    assert all(r.sgemm_gflops > 0 for r in rows)
    assert "simplernn_numba ns/step" in text and "FMA bound ns/step" in text and "% of bound" in text
    with pytest.raises(SystemExit):
        bench.main(["--per-step", "--no-roofline"])


def test_openvino_peer_matches_ours_and_skips_what_it_cannot_run():
    pytest.importorskip("openvino")
    case = bench.Case(3, 6, 4, 5)
    problem = bench.case_problem(case)
    ours = bench.BUILDERS[bench.OURS](problem, case)()
    cases.assert_close(bench.BUILDERS["openvino"](problem, case)(), np.asarray(ours),
                       *cases.tolerance("float32", "peer"))
    for other in (bench.Case(3, 6, 4, 5, "float64"), bench.Case(3, 6, 4, 5, masked=True)):
        with pytest.raises(NotImplementedError):
            bench.BUILDERS["openvino"](bench.case_problem(other), other)
