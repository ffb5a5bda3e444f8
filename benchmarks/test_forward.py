"""Forward inference through the public layer call over the benchmark grid.

Run ``python -m pytest benchmarks --benchmark-enable -n 0 -m "not slow"`` for the quick part,
drop ``-m`` for the 128,200,512,512 case as well. Peers are timed side by side by
``python -m simplernn_numba.bench``; this suite tracks our own timings over time
(``--benchmark-autosave`` / ``--benchmark-compare``).
"""

import numpy as np
import pytest

from simplernn_numba import bench

CASES = bench.default_cases()


def _param(case):
    marks = [pytest.mark.slow] if case.flops > 1e9 else []
    return pytest.param(case, id=case.label.replace(" ", "-"), marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_forward(benchmark, case):
    problem = bench.case_problem(case)
    run = bench.BUILDERS[bench.OURS](problem, case)
    run()  # compile or load from the cache outside the timing
    benchmark.extra_info["gflop"] = case.flops / 1e9
    out = benchmark(run)
    expected = bench.BUILDERS["numpy"](problem, case)()
    rtol, atol = bench.tolerance(case.dtype, "peer")
    np.testing.assert_allclose(out, expected, rtol=rtol, atol=atol)
