"""Benchmarks of the SimpleRNN layer against NumPy, PyTorch, Keras, ONNX Runtime, JAX and OpenVINO.

``python -m simplernn_numba.bench`` (``--train`` for a training step; ``--help`` for the
options) times our forward pass **through the public layer call** (validation and
dispatch included) and every installed peer on the same weights and inputs, checks each
peer's output against ours, and writes a Markdown table and a PNG plot. The peers are the
``bench`` extra (``pip install -e ".[bench]"``); missing ones are skipped with a note.

- :mod:`.cases`: shapes, random problems and tolerances (shared with the tests);
- :mod:`.peers`, :mod:`.training`: the forward-pass and training-step implementations;
- :mod:`.timing`: interleaved, time-sliced measurement and the sgemm roofline;
- :mod:`.report`: the Markdown table, the plot, import + first-call times;
- :mod:`.cli`: the command line.
"""

from .cases import Case, Problem, case_problem, default_cases, tolerance
from .cli import main
from .peers import BUILDERS, OURS, PEERS
from .report import markdown, plot
from .timing import Row, run
from .training import TRAIN_BUILDERS

__all__ = ["BUILDERS", "OURS", "PEERS", "TRAIN_BUILDERS", "Case", "Problem", "Row", "case_problem",
           "default_cases", "main", "markdown", "plot", "run", "tolerance"]
