"""``python -m simplernn_numba.bench``: see :mod:`simplernn_numba.bench.cli`."""

from .cli import main

if __name__ == "__main__":
    main()
