"""Command line: ``python -m simplernn_numba <command>``; ``--help`` lists the commands.

- ``demo``: the Keras example on built-in data, checked against the NumPy reference and timed.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import _demo


def main(argv: Sequence[str] | None = None) -> None:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the chosen command."""
    parser = argparse.ArgumentParser(prog="python -m simplernn_numba")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the Keras example and time it against NumPy")
    demo.add_argument("--repeat", type=int, default=20, help="timed calls per shape (default 20)")
    demo.set_defaults(run=lambda args: _demo.run(args.repeat))
    args = parser.parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
