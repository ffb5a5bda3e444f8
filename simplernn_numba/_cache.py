"""Numba's on-disk cache (``cache=True``) keyed on the sources compiled code can read.

Numba stamps a cached function with its own source file only, and documents that a change
to a function in another file is not noticed. The CPU kernels compile in functions and
constants from other modules (:mod:`.kernels.cpu.products`, :mod:`.kernels.cpu.tanh`,
:mod:`.kernels.config`, :mod:`.activations`, ...): after one of those changes (an edit, a
``git pull`` in an editable install) a cached kernel would keep the old code, and where the old
code assumed another tile size than the Python side now allocates for, that is a write past a
buffer, not only a stale result. :func:`install` puts cache locators first in Numba's list
that, for functions defined in this package only, stamp the cache with a hash of the modules
compiled code can read (:data:`STAMPED`: every module of :mod:`.kernels`, and
:mod:`.activations`) and with the compile-time settings' values (the vector width follows the
machine); a change to the layer, the adapters or the benchmarks keeps the cache.
:mod:`simplernn_numba.kernels` installs them, with its settings, before any of its modules
that compile is imported.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

#: The package's directory: functions defined under it get the stamp.
PACKAGE = Path(__file__).resolve().parent
#: What compiled code can read, relative to the package: every ``*.py`` under these folders,
#: and these files (all the package's compiled functions live in ``kernels``).
STAMPED = ("kernels", "activations.py")


def source_stamp(root: Path = PACKAGE, parts: tuple[str, ...] = STAMPED) -> str:
    """SHA-256 of the paths (relative to ``root``) and contents of the ``*.py`` files among
    ``parts`` of ``root``: folders (searched recursively) and files."""
    paths = []
    for part in parts:
        path = root / part
        paths.extend(path.rglob("*.py") if path.is_dir() else [path] if path.exists() else [])
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


#: The compile-time settings' values that :func:`install` was given (part of the stamp).
_settings = ""


@functools.cache
def _package_stamp() -> str:
    """:func:`source_stamp` and the compile-time settings given to :func:`install`."""
    return source_stamp() + ";" + _settings


def _in_package(py_file: str) -> bool:
    """``py_file`` is one of this package's modules, and the package is a directory whose
    sources :func:`source_stamp` can read (not inside a zip: Numba's zip locator stamps the
    archive itself)."""
    try:
        return PACKAGE.is_dir() and Path(py_file).resolve().is_relative_to(PACKAGE)
    except (OSError, ValueError):
        return False


def _package_locator(base: type) -> type:
    """``base`` (one of Numba's source-file locators) for this package's functions only,
    stamped with :func:`source_stamp` instead of the function's file."""

    class PackageLocator(base):
        def get_source_stamp(self):
            return _package_stamp()

        @classmethod
        def from_function(cls, py_func, py_file):
            if not _in_package(py_file):
                return None
            return super().from_function(py_func, py_file)

    PackageLocator.__name__ = PackageLocator.__qualname__ = f"Package{base.__name__.lstrip('_')}"
    return PackageLocator


def install(settings: str) -> bool:
    """Put the package locators first in Numba's cache locator list (once), stamping with the
    sources and ``settings`` (the compile-time settings' values, some of which follow the
    machine); returns whether they are in place (False where this Numba keeps its locators
    elsewhere)."""
    global _settings
    if _settings and settings != _settings:
        raise RuntimeError("the compile-time settings cannot change once kernels are stamped")
    _settings = settings
    try:
        from numba.core import caching
        impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # public from 0.61 on
        mixin = caching._SourceFileBackedLocatorMixin
        classes = list(impl._locator_classes)
    except (ImportError, AttributeError):
        return False
    if any(c.__module__ == __name__ for c in classes):
        return True
    impl._locator_classes = [_package_locator(c) for c in classes if issubclass(c, mixin)] + classes
    return True
