"""Every ```python block of README.md and docs/*.md runs, and the README's layout matches the tree.

A block is skipped when a package it imports is not installed (Keras, torch, Dask, ONNX, ...),
or, when its first line is ``# requires: gpu``, without a usable GPU. Each block runs in a
fresh namespace in an empty working directory.
"""

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OPTIONAL = ("keras", "torch", "dask", "distributed", "onnx", "onnxruntime", "tf_keras", "tensorflow")


def _blocks() -> list:
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"^```python\n(.*?)^```", text, re.M | re.S):
            line = text.count("\n", 0, match.start()) + 1
            found.append(pytest.param(match.group(1), id=f"{path.name}:{line}"))
    return found


BLOCKS = _blocks()


def test_every_document_is_covered():
    names = {block.id.split(":")[0] for block in BLOCKS}
    assert {"README.md", "usage.md", "interop.md", "keras_semantics.md", "gpu.md"} <= names


@pytest.mark.parametrize("code", BLOCKS)
def test_python_block_runs(code, tmp_path, monkeypatch):
    if code.startswith("# requires: gpu"):
        from simplernn_numba import dispatch
        from simplernn_numba.kernels.device_arrays import simulated

        if not dispatch.cuda_available() or simulated():
            pytest.skip("needs a CUDA GPU")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    for module in dict.fromkeys(re.findall(r"^(?:import|from) (\w+)", code, re.M)):
        if module in OPTIONAL:
            pytest.importorskip(module)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<doc block>", "exec"), {"__name__": "__main__"})  # as a script runs


def _layout() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Layout")
    return text[text.index("```text\n", start):text.index("\n```", text.index("```text\n", start) + 8)]


def test_readme_layout_matches_the_tree():
    layout = _layout()
    package = ROOT / "simplernn_numba"
    for path in package.rglob("*.py"):
        if path.name != "__init__.py":
            assert path.name in layout or path.stem in layout, f"README layout misses {path}"
    for path in package.iterdir():
        if (path / "__init__.py").exists():
            assert path.name + "/" in layout, f"README layout misses {path.name}/"
    for doc in (ROOT / "docs").glob("*.md"):
        assert doc.stem in layout, f"README layout misses docs/{doc.name}"
    for name in re.findall(r"\w+\.py", layout):  # nothing stale
        assert list(package.rglob(name)) or (ROOT / "examples" / name).exists(), name
