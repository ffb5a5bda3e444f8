"""Smoke tests of the benchmark harness (``python -m simplernn_numba.bench``): no timings checked."""

import numpy as np
import pytest

from simplernn_numba import bench


def test_cli_writes_table_with_ratio_and_roofline(tmp_path, capsys):
    rows = bench.main(["--case", "3,4,5,6", "--case", "2,3,4,5,float64,masked", "--peers", "numpy",
                       "--repeat", "2", "--out-dir", str(tmp_path), "--no-plot"])
    text = (tmp_path / "bench.md").read_text()
    assert [r.case.label for r in rows] == ["3,4,5,6", "2,3,4,5 float64 masked"]
    assert set(rows[0].timings) == {"simplernn_numba", "numpy"}
    assert "| 3,4,5,6 |" in text and "% of roofline" in text and "speed-up vs best" in text
    assert "GFLOP/s" in capsys.readouterr().err


def test_peer_with_wrong_output_is_reported_not_timed(monkeypatch):
    def wrong(problem, case):
        return lambda: np.zeros((case.batch, case.steps, case.units), problem.x.dtype) + 1
    monkeypatch.setitem(bench.BUILDERS, "numpy", wrong)
    (row,) = bench.run([bench.Case(2, 3, 4, 5)], peers=("numpy",), repeat=2, progress=False)
    assert "numpy" not in row.timings
    assert row.notes["numpy"].startswith("output differs from ours")


def test_missing_peer_is_skipped_with_a_note(monkeypatch):
    def missing(problem, case):
        raise ImportError("no module", name="somepeer")
    monkeypatch.setitem(bench.BUILDERS, "torch", missing)
    (row,) = bench.run([bench.Case(2, 3, 4, 5)], peers=("torch",), repeat=2, progress=False)
    assert row.notes == {"torch": "not installed (somepeer)"}
    assert "- torch: not installed (somepeer)" in bench.markdown([row])


def test_masked_numpy_peer_matches_layer():
    case = bench.Case(3, 6, 4, 5, masked=True)
    problem = bench.make_problem(case)
    ours = bench.BUILDERS[bench.OURS](problem, case)()
    np.testing.assert_allclose(bench.BUILDERS["numpy"](problem, case)(), ours, rtol=1e-5, atol=1e-6)


def test_parse_case_and_unknown_peer():
    assert bench.parse_case("1,2,3,4,float64") == bench.Case(1, 2, 3, 4, "float64")
    with pytest.raises(SystemExit):
        bench.main(["--peers", "nope", "--no-roofline"])


def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    rows = bench.run([bench.Case(2, 3, 4, 5)], peers=("numpy",), repeat=2, progress=False)
    bench.plot(rows, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
