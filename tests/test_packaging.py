"""Packaging: the version comes from the metadata, and importing the package needs numpy and numba only."""

import importlib.metadata
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import simplernn_numba

ROOT = Path(__file__).resolve().parent.parent

_SCRIPT = """
import sys
import numba
by_numba = {name.split(".")[0] for name in sys.modules}  # numba imports scipy where it is installed
import simplernn_numba, simplernn_numba.__main__
print(" ".join(sorted({name.split(".")[0] for name in sys.modules} - by_numba | {"numpy", "numba"})))
"""
#: Packages of the optional extras, none of which an import of the package may load.
OPTIONAL = {"keras", "tf_keras", "tensorflow", "torch", "onnx", "onnxruntime", "dask", "distributed",
            "jax", "matplotlib", "scipy", "pandas", "pytest", "hypothesis"}


def test_version_is_the_installed_metadata():
    assert simplernn_numba.__version__ == importlib.metadata.version("simplernn_numba")


def test_import_and_demo_entry_need_numpy_and_numba_only():
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    assert {"simplernn_numba", "numpy", "numba"} <= loaded and not loaded & OPTIONAL, loaded & OPTIONAL


def test_typed_marker_and_license_ship():
    root = Path(simplernn_numba.__file__).parent
    assert (root / "py.typed").exists() and (root.parent / "LICENSE").read_text().startswith("MIT License")


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_every_extra_the_docs_name_exists_and_brings_what_its_snippets_import():
    extras = _pyproject()["optional-dependencies"]
    named = set()
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        named.update(re.findall(r"""pip install (?:-e )?["']?\.\[(\w+)\]""", text))
    assert {"keras", "torch", "onnx", "dask"} <= named and named <= set(extras), named - set(extras)
    requirements = {name: {re.split(r"[<>=;\[ ]", r)[0] for r in reqs} for name, reqs in extras.items()}
    assert {"onnx", "onnxruntime"} <= requirements["onnx"]
    assert "keras" in requirements["keras"] and "torch" in requirements["torch"]


def test_metadata_names_the_supported_pythons_and_the_release():
    project = _pyproject()
    lowest = int(re.fullmatch(r">=3\.(\d+)", project["requires-python"]).group(1))
    versions = {int(c.rsplit(".", 1)[1]) for c in project["classifiers"]
                if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)}
    assert min(versions) == lowest and versions == set(range(lowest, max(versions) + 1))
    releases = re.findall(r"^## (\d+\.\d+\.\d+)", (ROOT / "CHANGELOG.md").read_text(encoding="utf-8"), re.M)
    assert releases and releases[0] == project["version"]


def test_public_call_signatures_are_typed():
    from simplernn_numba import Bidirectional, SimpleRNN, Stream, compiled, functional, interop
    from simplernn_numba.interop import dask, keras, onnx, saving, streaming

    assert interop
    functions = [SimpleRNN.__call__, SimpleRNN.backward, Bidirectional.__call__, Bidirectional.backward,
                 functional.forward, functional.backward, Stream.step, Stream.__init__, streaming.step,
                 dask.predict, keras.from_keras, keras.to_keras, onnx.to_onnx, saving.save, saving.load,
                 compiled.step, compiled.forward]
    for function in functions:
        signature = inspect.signature(function)
        untyped = [name for name, p in signature.parameters.items()
                   if name != "self" and p.annotation is inspect.Parameter.empty]
        assert not untyped, (function.__qualname__, untyped)
        returns = signature.return_annotation is not inspect.Signature.empty
        assert returns or function.__name__ == "__init__", function.__qualname__
