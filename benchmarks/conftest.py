"""pytest-benchmark suite: ``python -m pytest benchmarks --benchmark-enable -n 0``.

The default test run (``python -m pytest``) does not collect this folder; with
``--benchmark-disable`` (the project default) every benchmark runs once as a smoke test.
Cases above 1 GFLOP are marked ``slow``.
``-n 0`` turns off the project's default pytest-xdist workers, under which pytest-benchmark
disables itself.
"""
