"""Packaging: the version comes from the metadata, and importing the package needs numpy and numba only."""

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import simplernn_numba

_SCRIPT = """
import sys
import simplernn_numba, simplernn_numba.__main__
print(" ".join(sorted({name.split(".")[0] for name in sys.modules})))
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
