"""Training step (forward + backward) through the public layer API over the benchmark grid.

Ours is ``layer(x, training=True)`` then ``layer.backward(d_output)``. Run
``python -m pytest benchmarks/test_train.py --benchmark-enable -n 0 -m "not slow"``; peers
(torch autograd, ``jax.vjp`` of ``lax.scan``) are timed side by side by
``python -m simplernn_numba.bench --train``.
"""

import pytest

from simplernn_numba import bench
from simplernn_numba.bench import cases
from simplernn_numba.bench import training as bench_train

CASES = bench.default_cases()


def _param(case):
    marks = [pytest.mark.slow] if case.flops > 1e9 else []
    return pytest.param(case, id=case.label.replace(" ", "-"), marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_train_step(benchmark, case):
    problem = bench.case_problem(case)
    run = bench_train.TRAIN_BUILDERS[bench.OURS](problem, case)
    run()  # compile or load from the cache outside the timing
    benchmark.extra_info["gflop"] = bench_train.FLOPS_FACTOR * case.flops / 1e9
    grads = benchmark(run)
    if case.flops < 1e8:  # the NumPy oracle is slow above that
        expected = bench_train.TRAIN_BUILDERS["numpy"](problem, case)()
        cases.assert_close(grads, expected, **bench_train.tolerance(case))
