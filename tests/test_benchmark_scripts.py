"""The scripts in benchmarks/ (not collected as tests) still import and run against the package."""

import ast
import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(p.stem for p in BENCHMARKS.glob("*.py")
                                        if p.stem not in ("conftest",) and not p.stem.startswith("test_")))
def test_script_imports(name):
    _load(name)


def test_cold_start_scenarios_import_what_exists():
    """Each scenario's code runs in a fresh interpreter; its imports must name real things."""
    scenarios = _load("cold_start").SCENARIOS
    for name, code in scenarios.items():
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.ImportFrom):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), (name, node.module, alias.name)


def test_streaming_benchmark_runs(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["bench_streaming.py", "--calls", "3", "--units", "8"])
    _load("bench_streaming").main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("B=1 U=8 F=16") and "step kernel (no checks)" in lines[1]
