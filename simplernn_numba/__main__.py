"""Command line: ``python -m simplernn_numba <command>``; ``--help`` lists the commands.

- ``demo``: the Keras example on built-in data, checked against the NumPy reference and timed.
- ``compile``: compile the common CPU kernel variants into Numba's on-disk cache ahead of time
  (a Docker image's build, a CI job's setup), so that first calls load instead of compiling.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import _demo

#: The CPU plans the compile command knows (``kernels.cpu.warmup.PATHS``, without importing it).
PATHS = ("lanes", "rows", "one_row", "two_rows", "panels")


def main(argv: Sequence[str] | None = None) -> None:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the chosen command."""
    parser = argparse.ArgumentParser(prog="python -m simplernn_numba")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the Keras example and time it against NumPy")
    demo.add_argument("--repeat", type=int, default=20, help="timed calls per shape (default 20)")
    demo.set_defaults(run=lambda args: _demo.run(args.repeat))
    warm = commands.add_parser(
        "compile", help="compile the common CPU kernel variants into the on-disk cache")
    warm.add_argument("--dtype", choices=("float32", "float64", "all"), default="float32",
                      help="the layer dtype(s) to compile for (default float32)")
    warm.add_argument("--training", action="store_true",
                      help="also the training step's variants (forward and backward)")
    warm.add_argument("--activation", default="tanh", help="the activation (default tanh)")
    warm.add_argument("--plan", action="append", choices=PATHS, dest="plans",
                      help="only this plan's variants (repeatable; default: every plan)")
    warm.set_defaults(run=_compile)
    args = parser.parse_args(argv)
    args.run(args)


def _compile(args: argparse.Namespace) -> None:
    from . import activations
    from .kernels.cpu import notice, warmup

    activations.get(args.activation)  # a clear error for an unknown name, before any compiling
    dtypes = ("float32", "float64") if args.dtype == "all" else (args.dtype,)
    with notice.compiling_ahead():
        results = warmup.run(dtypes, args.training, args.activation, tuple(args.plans or PATHS))
    compiled = sum(1 for _, _, functions in results if functions)
    print(f"{len(results)} variants ready ({compiled} compiled, {len(results) - compiled} cached) "
          f"in {sum(seconds for _, seconds, _ in results):.1f} s")


if __name__ == "__main__":
    main()
