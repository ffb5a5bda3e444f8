"""Numba's on-disk cache of the package's kernels is keyed on the sources compiled code can read
(:mod:`simplernn_numba._cache`): a kernel compiles in functions from other modules, so a change
to any of them must invalidate it; a change elsewhere (the layer, adapters, benchmarks) keeps it."""

import importlib.util

import pytest
from numba.core import caching

from simplernn_numba import _cache
from simplernn_numba.kernels import config
from simplernn_numba.kernels.cpu import lanes, products, rows


def _locators():
    return (getattr(caching, "CacheImpl", None) or caching._CacheImpl)._locator_classes


def test_kernels_are_stamped_with_the_kernels_sources():
    stamp = _cache.source_stamp() + ";" + config.compile_time_values()
    assert f"VECTOR_BYTES={config.VECTOR_BYTES}" in stamp
    for kernel in (rows.forward, lanes.backward, products.product):
        locator = kernel._cache._impl.locator
        assert type(locator).__module__ == _cache.__name__
        assert locator.get_source_stamp() == stamp


def test_source_stamp_follows_the_kernels_and_activations_only(tmp_path):
    (tmp_path / "kernels" / "cpu").mkdir(parents=True)
    (tmp_path / "kernels" / "cpu" / "a.py").write_text("A = 1\n")
    (tmp_path / "activations.py").write_text("TANH = 1\n")
    (tmp_path / "layer.py").write_text("class Layer: ...\n")
    (tmp_path / "kernels" / "notes.txt").write_text("not source")
    first = _cache.source_stamp(tmp_path)
    assert _cache.source_stamp(tmp_path) == first
    (tmp_path / "kernels" / "notes.txt").write_text("still not source")
    (tmp_path / "layer.py").write_text("class Layer: pass\n")  # not read by compiled code
    (tmp_path / "bench.py").write_text("")
    assert _cache.source_stamp(tmp_path) == first
    (tmp_path / "kernels" / "cpu" / "a.py").write_text("A = 2\n")
    second = _cache.source_stamp(tmp_path)
    assert second != first
    (tmp_path / "kernels" / "cpu" / "a.py").rename(tmp_path / "kernels" / "cpu" / "b.py")
    third = _cache.source_stamp(tmp_path)
    assert third != second
    (tmp_path / "activations.py").write_text("TANH = 2\n")
    assert _cache.source_stamp(tmp_path) != third


def test_functions_outside_the_package_keep_numbas_locators(tmp_path):
    path = tmp_path / "outside.py"
    path.write_text("from numba import njit\n\n@njit(cache=True)\ndef f(x):\n    return x + 1\n")
    spec = importlib.util.spec_from_file_location("outside_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.f(1) == 2
    assert type(module.f._cache._impl.locator).__module__ == caching.__name__


def test_only_a_package_directory_gets_the_package_stamp(tmp_path, monkeypatch):
    """Inside a zip the sources cannot be listed (an empty stamp would never change): the
    package's functions then keep Numba's locators, whose zip locator stamps the archive."""
    module = str(_cache.PACKAGE / "kernels" / "cpu" / "rows.py")
    assert _cache._in_package(module)
    assert not _cache._in_package(str(tmp_path / "outside.py"))
    monkeypatch.setattr(_cache, "PACKAGE", tmp_path / "archive.zip" / "simplernn_numba")
    assert not _cache._in_package(str(tmp_path / "archive.zip" / "simplernn_numba" / "cpu.py"))


def test_install_is_idempotent():
    before = list(_locators())
    assert _cache.install(config.compile_time_values())
    assert list(_locators()) == before
    assert sum(c.__module__ == _cache.__name__ for c in before) >= 2


def test_the_stamp_cannot_change_its_settings():
    """The stamp is computed once per process: other settings later would be ignored."""
    with pytest.raises(RuntimeError, match="compile-time settings"):
        _cache.install(config.compile_time_values() + ",X=1")
