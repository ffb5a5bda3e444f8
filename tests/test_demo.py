"""``python -m simplernn_numba demo``: runs, agrees with the reference, prints the same values each run."""

import re
import subprocess
import sys

from simplernn_numba import __main__ as cli


def test_demo_prints_the_example_and_agrees_with_the_reference(capsys):
    cli.main(["demo", "--repeat", "1"])
    first = capsys.readouterr().out
    assert "Keras example: inputs (32, 10, 8) -> sequence (32, 10, 4), final state (32, 4)" in first
    diffs = [float(line.split()[-1]) for line in first.splitlines() if re.match(r"\s+\d+,\d+,\d+,\d+ ", line)]
    assert len(diffs) == 3 and max(diffs) < 1e-5
    cli.main(["demo", "--repeat", "1"])
    again = capsys.readouterr().out

    def values(text):  # everything but the timings
        return [line for line in text.splitlines() if "state" in line] + [
            line.split()[0] + line.split()[-1] for line in text.splitlines() if re.match(r"\s+\d+,", line)]

    assert values(again) == values(first)


def test_module_entry_point_needs_a_command():
    run = subprocess.run([sys.executable, "-m", "simplernn_numba"], capture_output=True, text=True)
    assert run.returncode == 2 and "demo" in run.stderr
